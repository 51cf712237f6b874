package statuspage

import (
	"strconv"
	"time"
)

// formatSeconds shows a wait the way people read it: "42s", "3m05s".
func formatSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	if d < time.Minute {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	m, sec := int(d/time.Minute), int(d%time.Minute/time.Second)
	return strconv.Itoa(m) + "m" + pad(sec) + "s"
}

func pad(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
