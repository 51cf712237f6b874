package httpbreaker

import (
	"strings"
	"sync"
	"sync/atomic"
)

// registry holds one breaker per key. Looking up a tracked key is one atomic
// load and one lookup in a plain, never-mutated map: no lock, no allocation,
// about twice as fast as sync.Map's interface-keyed trie.
//
// New keys go to a small dirty map under mu. Once lookups have missed the
// read map a quarter as many times as it holds keys, read and dirty are
// merged into a new read map: the copy costs at most four inserts per miss,
// amortised, and memory stays near one map's worth.
type registry struct {
	read atomic.Pointer[map[string]*breaker] // published maps are read-only

	mu sync.Mutex
	// dirty holds the keys added since read was published; requires mu.
	dirty map[string]*breaker
	// misses counts lookups read could not answer since it was published;
	// requires mu.
	misses int
}

// lookup returns the breaker of key, or nil if key is not tracked.
func (r *registry) lookup(key string) *breaker {
	if b := r.readMap()[key]; b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missed(key)
}

// obtain returns the breaker of key, tracking it, closed, on first use.
func (r *registry) obtain(key string, s *settings) *breaker {
	if b := r.readMap()[key]; b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.missed(key); b != nil {
		return b
	}
	if r.dirty == nil {
		r.dirty = make(map[string]*breaker)
	}
	key = strings.Clone(key) // don't pin the request's URL string
	b := newBreaker(key, s)
	r.dirty[key] = b
	return b
}

func (r *registry) readMap() map[string]*breaker {
	if m := r.read.Load(); m != nil {
		return *m
	}
	return nil
}

// missed answers a lookup the read map could not, and merges dirty into a
// new read map when the misses have paid for it. Requires r.mu held.
func (r *registry) missed(key string) *breaker {
	read := r.readMap()
	if b := read[key]; b != nil { // published meanwhile
		return b
	}
	b := r.dirty[key]
	r.misses++
	if len(r.dirty) > 0 && r.misses > len(read)/4 {
		merged := make(map[string]*breaker, len(read)+len(r.dirty))
		for k, v := range read {
			merged[k] = v
		}
		for k, v := range r.dirty {
			merged[k] = v
		}
		r.read.Store(&merged)
		r.dirty, r.misses = nil, 0
	}
	return b
}
