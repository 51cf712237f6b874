package httpbreaker

import (
	"strings"
	"sync"
)

// registry holds one breaker per key. Looking up a known key takes no lock
// shared across hosts and allocates nothing.
type registry struct {
	hosts sync.Map // string → *breaker
}

// lookup returns the breaker of key, or nil if key was never used.
func (r *registry) lookup(key string) *breaker {
	if v, ok := r.hosts.Load(key); ok {
		return v.(*breaker)
	}
	return nil
}

// obtain returns the breaker of key, creating it closed on first use.
func (r *registry) obtain(key string) *breaker {
	if b := r.lookup(key); b != nil {
		return b
	}
	key = strings.Clone(key) // don't pin the request's URL string
	v, _ := r.hosts.LoadOrStore(key, &breaker{host: key})
	return v.(*breaker)
}
