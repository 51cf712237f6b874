package httpbreaker

import (
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
	st := &shared{policy: Policy{Window: 10 * time.Second}, window: 10 * time.Second, epoch: time.Unix(100, 0)}
	assert.Equal(t, int64(-1), st.bucket(st.offset(time.Unix(99, 0))))
	assert.Equal(t, int64(0), st.bucket(st.offset(time.Unix(100, 0))))
	assert.Equal(t, int64(1), st.bucket(int64(time.Second)))
	assert.Equal(t, int64(1<<63-1), later(1<<62, 1<<62), "saturates")
	assert.Equal(t, 9, bucketSlot(-1))
}
