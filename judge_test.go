package httpbreaker

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"120":                            120 * time.Second,
		" 5 ":                            5 * time.Second,
		"Mon, 23 Nov 2026 12:01:00 GMT":  time.Minute,     // IMF-fixdate
		"Monday, 23-Nov-26 12:02:00 GMT": 2 * time.Minute, // RFC 850
		"Mon Nov 23 12:03:00 2026":       3 * time.Minute, // ANSI C asctime
	} {
		at, ok := retryAfter(http.Header{"Retry-After": {v}}, now)
		if assert.True(t, ok, v) {
			assert.Equal(t, now.Add(want), at.UTC(), v)
		}
	}
	for _, v := range []string{"", "0", "-1", "+5", "1e3", "1.5", "soon", "9223372036854775807", "99999999999999999999999",
		"Mon, 23 Nov 2026 11:59:00 GMT", "Mon, 23 Nov 2026 12:00:00 GMT"} {
		_, ok := retryAfter(http.Header{"Retry-After": {v}}, now)
		assert.False(t, ok, "%q", v)
	}
	_, ok := retryAfter(http.Header{}, now)
	assert.False(t, ok)
}
