package httpbreaker

import (
	"io"
	"net/http"
	"time"
)

// StaleEntrySize is what the stale cache counts for keeping resp to req,
// body included, for tests that size a cache in entries.
func StaleEntrySize(req *http.Request, resp *http.Response) int64 {
	c := newStaleCache(1<<40, nil)
	c.keep(req, resp, time.Time{})
	_, _ = io.ReadAll(resp.Body)
	return c.used
}

// SetControlsSeen sets whether the request path looks at contexts, as the
// first WithKey or WithoutBreaker does, and returns what it was.
func SetControlsSeen(seen bool) (was bool) { return controlsSeen.Swap(seen) }

// SetRandom replaces the throttle's random draws, for tests that decide
// which call a given probability refuses.
func SetRandom(t *Transport, random func() float64) { t.s.random = random }

// Evictable counts, in one consistent look under the registry's lock, the
// tracked hosts that are not isolated: those WithMaxHosts bounds.
func Evictable(t *Transport) int {
	t.hosts.mu.Lock()
	defer t.hosts.mu.Unlock()
	n := 0
	for _, b := range t.hosts.readMap() {
		if !b.forgotten.Load() && !b.isolated {
			n++
		}
	}
	for _, b := range t.hosts.dirty {
		if !b.isolated {
			n++
		}
	}
	return n
}
