package httpbreaker

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Counts are a host's totals since it was first tracked.
type Counts struct {
	// Requests counts the calls sent to the base transport that have
	// returned; each is exactly one of Successes, Failures and Ignored.
	Requests uint64 `json:"requests"`
	// Successes, Failures and Ignored count calls by verdict (a slow call
	// is a failure).
	Successes uint64 `json:"successes"`
	Failures  uint64 `json:"failures"`
	Ignored   uint64 `json:"ignored"`
	// Rejected counts refusals, answered by a fallback or not.
	Rejected uint64 `json:"rejected"`
	// Shed counts the refusals, of those, for overload (Policy.Throttle
	// or MaxConcurrent) rather than an open circuit.
	Shed uint64 `json:"shed"`
	// Retries counts the retries Transport.AllowRetry allowed, and
	// RetriesDenied those it refused; counted under Policy.RetryBudget.
	Retries       uint64 `json:"retries"`
	RetriesDenied uint64 `json:"retries_denied"`
	// Hedges counts the hedged attempts sent (Policy.HedgeAfter), and
	// HedgeWins the calls a hedged attempt answered rather than the first.
	Hedges    uint64 `json:"hedges"`
	HedgeWins uint64 `json:"hedge_wins"`
}

// counters are a host's totals of calls sent. Requests is not stored:
// each call that reached the base ends as exactly one of the three, so it
// is their sum, and a snapshot is consistent in itself. Refusals are
// counted apart, in hostMore (rejected), which every host that refuses has.
type counters struct {
	successes, failures, ignored atomic.Uint64
}

func (c *counters) count(o Outcome) {
	switch o {
	case Success:
		c.successes.Add(1)
	case Ignore:
		c.ignored.Add(1)
	default:
		c.failures.Add(1)
	}
}

// snapshot reads the counters as Counts: Requests is their sum. Rejected
// is the caller's to fill.
func (c *counters) snapshot() Counts {
	n := Counts{
		Successes: c.successes.Load(),
		Failures:  c.failures.Load(),
		Ignored:   c.ignored.Load(),
	}
	n.Requests = n.Successes + n.Failures + n.Ignored
	return n
}

// HostStatus describes one host's circuit at one moment. As JSON its
// fields are snake_case, the state is its name, and zero times and zero
// overload figures (Throttle, InFlight, Limit, Shedding) are left out.
type HostStatus struct {
	// Host is the breaker key.
	Host string `json:"host"`
	// State is the circuit's state, as State reports it.
	State State `json:"state"`
	// Isolated is set while the host is isolated by Isolate.
	Isolated bool `json:"isolated"`
	// ConsecutiveFailures is the current run of failures while closed.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// OpenedAt is when the circuit last opened; zero while closed.
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// RetryAt is when an open circuit admits a probe; zero unless open and
	// not isolated.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Throttle is the share of calls adaptive throttling refuses now
	// (Policy.Throttle), shared out by Criticality; 0 when off or not
	// closed.
	Throttle float64 `json:"throttle,omitzero"`
	// InFlight is how many calls hold a slot now; counted only under a
	// cap, Policy.MaxConcurrent or Policy.AdaptiveConcurrency.
	InFlight int `json:"in_flight,omitzero"`
	// Limit is the cap on calls in flight now: MaxConcurrent when
	// static, the adaptive limit under AdaptiveConcurrency (for a host
	// not called yet, the ceiling its first call meets), 0 when uncapped.
	Limit int `json:"limit,omitzero"`
	// Shedding is set while a closed circuit refuses calls for overload:
	// one was refused within the last Window (10s without one). Such a
	// host is up but not healthy.
	Shedding bool `json:"shedding,omitzero"`
	// Total counts the host's calls since it was first tracked; ClearState
	// does not reset it.
	Total Counts `json:"total"`
}

// Isolate opens host's circuit until ClearState: requests are refused with
// an [*OpenError] whose RetryAt is zero, no probe is admitted, and the host
// is never forgotten to make room. Isolating a host never seen tracks it.
// Isolation always takes effect: isolated hosts do not count against
// [WithMaxHosts], so they are bounded only by what the program isolates
// (the statuspage package isolates only hosts already tracked).
// Listeners hear the transition, and the one ClearState makes. An argument
// that names no host — "", or one no request could have — names no
// circuit: Isolate changes nothing, deliberately (there is nothing to
// refuse), and Tracked(host) stays false; check it where the host comes
// from an operator.
func (t *Transport) Isolate(host string) {
	if t.base == nil {
		return // not made by New
	}
	key := t.controlKey(host)
	if key == "" {
		return
	}
	b := t.hosts.isolate(key, &t.s)
	if t.fleet != nil {
		t.announceOpen(context.Background(), b)
	}
}

// Tracked reports whether host, read as by State, has a circuit the
// Transport keeps: used since it was last forgotten, isolated or opened by
// the fleet. Looking does not track it.
func (t *Transport) Tracked(host string) bool { return t.find(host) != nil }

// Status describes host's circuit; host is read as by State. A host not
// tracked is closed with zero counts and, under a concurrency cap, the
// Limit its first call meets; looking does not track it.
func (t *Transport) Status(host string) HostStatus {
	if b := t.find(host); b != nil {
		return b.hostStatus(&t.s)
	}
	st := HostStatus{Host: t.hostKey(host), State: StateClosed}
	t.s.untracked(&st)
	return st
}

// Snapshot describes every tracked host, sorted by Host; each entry is
// consistent in itself.
func (t *Transport) Snapshot() []HostStatus {
	all := t.hosts.all()
	list := make([]HostStatus, len(all))
	for i, b := range all {
		list[i] = b.hostStatus(&t.s)
	}
	slices.SortFunc(list, func(a, b HostStatus) int { return strings.Compare(a.Host, b.Host) })
	return list
}

// State returns the state of host's circuit. host may be a tracked key,
// given exactly (as WithKey or WithKeyFunc set it, "orders-api/v2" say);
// otherwise a host, a host:port or an absolute URL, normalised like a
// request's host (a bare host:port with port 80 or 443 also finds the
// breaker of the host without it). So a key not yet tracked is read as a
// host: Isolate("orders-api/v2") before any request with that key
// isolates "orders-api". A host never seen is closed; looking does not
// track it. Status, Tracked, Isolate and ClearState read host the same way.
func (t *Transport) State(host string) State {
	if b := t.find(host); b != nil {
		return b.current(&t.s)
	}
	return StateClosed
}

// IsOpen reports whether host's circuit is open: requests are refused.
func (t *Transport) IsOpen(host string) bool { return t.State(host) == StateOpen }

// IsHalfOpen reports whether host's circuit is half-open: probes may pass.
func (t *Transport) IsHalfOpen(host string) bool { return t.State(host) == StateHalfOpen }

// IsClosed reports whether host's circuit is closed: requests pass.
func (t *Transport) IsClosed(host string) bool { return t.State(host) == StateClosed }

// ClearState forces host's circuit closed and resets its counts; results of
// calls admitted before are then dropped. Listeners hear of the transition
// if the circuit was not closed. With a Store it closes the fleet's circuit
// too, whether or not this Transport tracks the host.
func (t *Transport) ClearState(host string) {
	if b := t.find(host); b != nil {
		t.hosts.clear(b, &t.s, false)
	}
	if t.fleet != nil {
		if key := t.controlKey(host); key != "" {
			ctx, cancel := storeContext(context.Background())
			defer cancel()
			_ = t.fleet.store.Reset(ctx, key)
		}
	}
}

// find returns the breaker a host argument names, or nil. A tracked key
// given exactly is that key, whatever it looks like ("orders-api/v2",
// "billing:eu"): keys set by WithKey or WithKeyFunc are found as given.
// Otherwise an absolute URL names exactly the circuit a request to it would
// use; a bare host:80 or host:443 names the circuit of the host without the
// port when only that one is tracked, since it more likely means
// https://host or http://host. With a key func, keys are taken as they are.
func (t *Transport) find(host string) *breaker {
	if b := t.hosts.lookup(host); b != nil {
		return b
	}
	key, alt := t.hostKeys(host)
	if key != host { // else looked up already
		if b := t.hosts.lookup(key); b != nil {
			return b
		}
	}
	if alt == "" {
		return nil
	}
	return t.hosts.lookup(alt)
}

// controlKey is the key Isolate and ClearState act on: the tracked circuit
// the argument names, or else the key it names — for a bare host:443 or
// host:80, the host without the port, which it most likely means.
func (t *Transport) controlKey(host string) string {
	if b := t.find(host); b != nil {
		return b.host
	}
	key, alt := t.hostKeys(host)
	if alt != "" {
		return alt
	}
	return key
}

// hostKeys turns a host argument into the key it names and, for a bare
// host:80 or host:443 (never a URL, never with a key func), the key without
// the port ("" otherwise).
func (t *Transport) hostKeys(host string) (key, alt string) {
	key = t.hostKey(host)
	if t.keyFunc == nil && !strings.Contains(host, "://") {
		alt = withoutDefaultPort(key)
	}
	return key, alt
}

// hostKey turns a host argument into the key it names.
func (t *Transport) hostKey(host string) string {
	if t.keyFunc != nil {
		return host
	}
	return normalizeHost(host)
}

// TransitionCount is how many times circuits went From a state To another.
type TransitionCount struct {
	From, To State
	Count    uint64
}

// Transitions counts the state changes of every host since the Transport
// was made, by from and to; pairs that never happened are left out.
func (t *Transport) Transitions() []TransitionCount {
	var counts []TransitionCount
	for from := range t.s.transitions {
		for to := range t.s.transitions[from] {
			if n := t.s.transitions[from][to].Load(); n > 0 {
				counts = append(counts, TransitionCount{From: State(from), To: State(to), Count: n})
			}
		}
	}
	return counts
}

// status describes the breaker, consistently: state and counts of one
// moment. An open circuit whose time has come turns half-open first, as for
// State.
func (b *breaker) status(s *shared) HostStatus {
	b.current(s)
	b.mu.Lock()
	w := b.load()
	st := HostStatus{Host: b.host, State: w.state(), ConsecutiveFailures: w.failures()}
	if w.state() != StateClosed {
		refusal := b.refusal()
		st.OpenedAt = refusal.openedAt
		st.Isolated = b.isolated
		if w.state() == StateOpen {
			st.RetryAt = refusal.RetryAt
		}
	}
	st.Total = b.counts.snapshot()
	if b.more != nil {
		st.Total.Rejected = b.more.rejected.Load()
	}
	b.mu.Unlock()
	return st
}
