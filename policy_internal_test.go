package httpbreaker

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestOpenTimeoutGrowth(t *testing.T) {
	p := Policy{ResetTimeout: time.Second, MaxResetTimeout: 5 * time.Second}
	var got []time.Duration
	for n := range 5 {
		got = append(got, p.openTimeout(n))
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
	assert.Equal(t, time.Second, Policy{ResetTimeout: time.Second}.openTimeout(10), "no growth without MaxResetTimeout")
	assert.Equal(t, 5*time.Second, p.openTimeout(62), "no overflow")
	uncapped := Policy{ResetTimeout: time.Second, MaxResetTimeout: math.MaxInt64}
	assert.Equal(t, time.Duration(math.MaxInt64), uncapped.openTimeout(maxReopens), "saturates, never negative")
}
