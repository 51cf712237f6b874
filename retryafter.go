package httpbreaker

import (
	"net/http"
	"strings"
	"time"
)

// retryAfter returns the instant a response's Retry-After header names
// (RFC 9110 §10.2.3: delta-seconds or an HTTP-date), and whether it names a
// usable one: a value that is missing, malformed, zero, negative, past or
// too large to represent is not.
func retryAfter(header http.Header, now time.Time) (time.Time, bool) {
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return time.Time{}, false
	}
	if isDigits(v) {
		const maxSeconds = int64(1<<63-1) / int64(time.Second)
		var secs int64
		for i := 0; i < len(v); i++ {
			secs = secs*10 + int64(v[i]-'0')
			if secs > maxSeconds {
				return time.Time{}, false
			}
		}
		if secs == 0 {
			return time.Time{}, false
		}
		return now.Add(time.Duration(secs) * time.Second), true
	}
	at, err := http.ParseTime(v)
	if err != nil || !at.After(now) {
		return time.Time{}, false
	}
	return at, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
