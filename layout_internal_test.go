package httpbreaker

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestBreakerFillsItsSizeClass keeps a host's record where calls on
// several cores do not contend. Go's allocator places an object of a 128-
// or 256-byte size class on a multiple of 128, so two hosts never share a
// cache line, nor the pair of lines the adjacent-line prefetcher fetches
// together; within the record, the counters every call adds to start a
// line of their own, after the key and the words every call reads. A field
// added to the breaker must come out of the key's bucket.
func TestBreakerFillsItsSizeClass(t *testing.T) {
	// Go's size classes around them: 112, 128, … 240, 256.
	assert.True(t, unsafe.Sizeof(keyed[[40]byte]{}) > 112 && unsafe.Sizeof(keyed[[40]byte]{}) <= 128)
	assert.True(t, unsafe.Sizeof(keyed[[168]byte]{}) > 240 && unsafe.Sizeof(keyed[[168]byte]{}) <= 256)
	for _, n := range []int{0, 1, 16, 17, 40, 41, 168, 169, 253} {
		key := strings.Repeat("k", n)
		b := newBreaker(key)
		assert.Equal(t, key, b.host)
		bucket := 40
		if n > 40 && n <= 168 {
			bucket = 168
		}
		start := uintptr(unsafe.Pointer(b)) - uintptr(bucket) // the key's bytes come first
		assert.Zero(t, start%128, "a record with a %d-byte key is not on a 128-byte boundary", n)
		counts := uintptr(unsafe.Pointer(&b.counts)) - start
		assert.Zero(t, counts%64, "with a %d-byte key the counters start no cache line", n)
		for _, read := range []uintptr{uintptr(unsafe.Pointer(&b.state)), uintptr(unsafe.Pointer(&b.forgotten)), uintptr(unsafe.Pointer(&b.more))} {
			assert.Less(t, read-start, counts, "with a %d-byte key a word every call reads shares the counters' line", n)
		}
	}
}

// TestTheRealClockIsReadOnce: without WithClock the clock reads the
// monotonic clock alone, and what it reads is still the offset of now.
func TestTheRealClockIsReadOnce(t *testing.T) {
	var s shared
	s.init(Policy{}.withDefaults(), nil, nil)
	assert.True(t, s.monotonic)
	before := s.offset(time.Now())
	got := s.clock()
	after := s.offset(time.Now())
	assert.True(t, before <= got && got <= after, "%d not in [%d, %d]", got, before, after)

	var fake shared
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fake.init(Policy{}.withDefaults(), func() time.Time { return at }, nil)
	assert.False(t, fake.monotonic)
	at = at.Add(time.Hour)
	assert.Equal(t, int64(time.Hour), fake.clock(), "an injected clock is read as it is")
}

// TestStrictIsTheDefaultClassifier: classifyCall applies
// DefaultClassifier's rule itself when no classifier was given; it must
// answer every status as DefaultClassifier does.
func TestStrictIsTheDefaultClassifier(t *testing.T) {
	rt, err := New(nil)
	assert.NoError(t, err)
	assert.True(t, rt.strict)
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
	for status := 100; status < 1000; status++ {
		resp := &http.Response{StatusCode: status}
		assert.Equal(t, DefaultClassifier(resp, nil), rt.classifyCall(req, resp, nil), "status %d", status)
	}
}
