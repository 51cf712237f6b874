package httpbreaker

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestBreakerFillsItsSizeClass keeps a host's record on 128-byte
// boundaries: Go's allocator places an object of a 128- or 256-byte size
// class on a multiple of 128, so two hosts' breakers never share a cache
// line, nor the pair of lines the adjacent-line prefetcher fetches
// together, and calls to different hosts never contend. A field added to
// the breaker must come out of the key's bucket.
func TestBreakerFillsItsSizeClass(t *testing.T) {
	assert.EqualValues(t, 80, unsafe.Sizeof(breaker{}), "the breaker's size, which the buckets below assume")
	assert.EqualValues(t, 128, unsafe.Sizeof(keyed[[48]byte]{}))
	assert.EqualValues(t, 256, unsafe.Sizeof(keyed[[176]byte]{}))
	for _, n := range []int{0, 1, 16, 17, 48, 49, 176, 177, 253} {
		key := strings.Repeat("k", n)
		b := newBreaker(key)
		assert.Equal(t, key, b.host)
		assert.Zero(t, uintptr(unsafe.Pointer(b))%128, "a breaker with a %d-byte key is not on a 128-byte boundary", n)
		assert.Zero(t, unsafe.Offsetof(b.counts)/64, "the counts a call adds to share the state word's cache line")
	}
}
