package httpbreaker

import (
	"strings"
	"sync"
	"sync/atomic"
)

// registry holds one breaker per key. Looking up a tracked key is one atomic
// load and one lookup in a plain, never-mutated map: no lock, no allocation.
// New keys go to a dirty map under mu, which is published as the new read
// map once lookups have missed the read map as many times as dirty holds
// keys — sync.Map's original design, specialised to string keys, which
// makes a tracked-key lookup about twice as fast as sync.Map's.
type registry struct {
	read atomic.Pointer[map[string]*breaker] // published maps are read-only

	mu sync.Mutex
	// dirty, when not nil, holds every key of read and the keys added since;
	// requires mu.
	dirty map[string]*breaker
	// misses counts lookups that read could not answer since it was
	// published; requires mu.
	misses int
}

// lookup returns the breaker of key, or nil if key is not tracked.
func (r *registry) lookup(key string) *breaker {
	if b := r.fromRead(key); b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fromDirty(key)
}

// obtain returns the breaker of key, tracking it, closed, on first use.
func (r *registry) obtain(key string) *breaker {
	if b := r.fromRead(key); b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.fromDirty(key); b != nil {
		return b
	}
	if r.dirty == nil {
		r.dirty = make(map[string]*breaker, len(r.readMap())+1)
		for k, b := range r.readMap() {
			r.dirty[k] = b
		}
	}
	key = strings.Clone(key) // don't pin the request's URL string
	b := &breaker{host: key}
	r.dirty[key] = b
	return b
}

func (r *registry) fromRead(key string) *breaker {
	return r.readMap()[key]
}

func (r *registry) readMap() map[string]*breaker {
	if m := r.read.Load(); m != nil {
		return *m
	}
	return nil
}

// fromDirty answers a lookup the read map missed, and publishes dirty once
// the misses have paid for copying it. Requires r.mu held.
func (r *registry) fromDirty(key string) *breaker {
	if b := r.fromRead(key); b != nil { // published meanwhile
		return b
	}
	b := r.dirty[key]
	r.misses++
	if r.dirty != nil && r.misses >= len(r.dirty) {
		m := r.dirty
		r.read.Store(&m)
		r.dirty, r.misses = nil, 0
	}
	return b
}
