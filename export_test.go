package httpbreaker

import (
	"io"
	"net/http"
	"sync"
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

// ManualHedgeTimer is a hedged call's timer that fires when a test calls
// Fire, on the test's goroutine, instead of after HedgeAfter.
type ManualHedgeTimer struct {
	f       func()
	mu      sync.Mutex
	armed   bool
	stopped bool
}

func (m *ManualHedgeTimer) Stop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.armed
	m.armed, m.stopped = false, true
	return was
}

func (m *ManualHedgeTimer) Reset(time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.armed
	m.armed = true
	return was
}

// Fire runs the timer's function as its expiry would, and reports whether
// it was armed (not stopped, and reset since it last fired). An unarmed
// timer does not run it: a stopped time.Timer never fires.
func (m *ManualHedgeTimer) Fire() bool {
	m.mu.Lock()
	armed := m.armed
	m.armed = false
	m.mu.Unlock()
	if armed {
		m.f()
	}
	return armed
}

// Stopped reports whether the race stopped its timer.
func (m *ManualHedgeTimer) Stopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// UseManualHedgeTimers makes each hedged call's timer a ManualHedgeTimer,
// sent on the returned channel as the call starts, until restore.
func UseManualHedgeTimers() (timers <-chan *ManualHedgeTimer, restore func()) {
	ch := make(chan *ManualHedgeTimer, 16)
	saved := startHedgeTimer
	startHedgeTimer = func(_ time.Duration, f func()) hedgeTimer {
		m := &ManualHedgeTimer{f: f, armed: true}
		ch <- m
		return m
	}
	pooledRaces = false
	return ch, func() { startHedgeTimer, pooledRaces = saved, true }
}

// HedgeGates asks the gates a hedge to key's host would meet now, and
// takes what it would take (a budget withdrawal): for the hedging
// simulation, which models the attempts and asks the Transport the rest.
// A host not tracked has no gate open.
func HedgeGates(t *Transport, key string) bool {
	b := t.hosts.lookup(key)
	return b != nil && t.s.hedges && b.more.rules.hedgeGates(&t.s, b)
}
