package httpbreaker

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRateWindowBuckets(t *testing.T) {
	var w rateWindow
	assert.False(t, w.record(0, false), "no failure yet")
	assert.True(t, w.record(0, true))
	w.record(3, false)
	w.record(9, true)
	s, f := w.counts(9)
	assert.Equal(t, [2]int{2, 2}, [2]int{s, f}, "buckets 0..9 are all in the window")
	s, f = w.counts(10)
	assert.Equal(t, [2]int{1, 1}, [2]int{s, f}, "bucket 0 slid out")
	assert.True(t, w.record(18, false), "the failure of bucket 9 is still in the window")
	assert.False(t, w.record(19, false), "now it is not")
	w.record(19+windowBuckets*3, true) // reuses a slot a few laps later
	s, f = w.counts(19 + windowBuckets*3)
	assert.Equal(t, [2]int{0, 1}, [2]int{s, f})
	w.reset()
	s, f = w.counts(19 + windowBuckets*3)
	assert.Zero(t, s+f)
	assert.False(t, w.record(100, false))
}

func TestRateWindowHalvesOnOverflow(t *testing.T) {
	var w rateWindow
	w.buckets[0].Store(bucketTag(0)<<bucketTagShift | bucketCountMask<<bucketCountBits | 1000)
	w.add(0, true)
	s, f := w.counts(0)
	assert.Equal(t, 500, s)
	assert.Equal(t, (bucketCountMask+1)/2, f, "both halved: the ratio survives")
}

func TestRateWindowNegativeInstants(t *testing.T) {
	st := &settings{policy: Policy{Window: 10 * time.Second}, epoch: time.Unix(100, 0)}
	assert.Equal(t, int64(-1), st.bucket(st.offset(time.Unix(99, 0))))
	assert.Equal(t, int64(0), st.bucket(st.offset(time.Unix(100, 0))))
	assert.Equal(t, int64(1), st.bucket(int64(time.Second)))
	assert.Equal(t, int64(1<<63-1), later(1<<62, 1<<62), "saturates")
	assert.Equal(t, 9, bucketSlot(-1))
}

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
