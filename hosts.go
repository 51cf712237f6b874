package httpbreaker

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultMaxHosts is how many hosts a Transport tracks at once unless
// [WithMaxHosts] says otherwise.
const DefaultMaxHosts = 10000

// WithMaxHosts bounds the hosts tracked at once, 10000 by default, so a
// Transport that sees hosts from user input (a crawler, a webhook sender)
// cannot grow without bound. At capacity a new host makes room by forgetting
// a batch of n/64 hosts (at least one): the least recently used closed hosts
// of a sample, open and half-open ones only when no closed host is left,
// isolated ones never. A forgotten host that returns starts closed with
// fresh counts. Isolated hosts are kept beyond n (see [Transport.Isolate]).
// Admitting a new host at the bound costs O(1) amortised. n < 1 makes New
// fail.
func WithMaxHosts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("httpbreaker: WithMaxHosts(%d): want at least 1", n)
		}
		c.maxHosts = n
		return nil
	}
}

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
}

// HostStatus describes one host's circuit at one moment. As JSON its
// fields are snake_case, the state is its name and zero times are left out.
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
// Listeners hear the transition, and the one ClearState makes.
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
		t.announceOpen(nil, b)
	}
}

// Tracked reports whether host, read as by State, has a circuit the
// Transport keeps: used since it was last forgotten, isolated or opened by
// the fleet. Looking does not track it.
func (t *Transport) Tracked(host string) bool { return t.find(host) != nil }

// Status describes host's circuit; host is read as by State. A host not
// tracked is closed with zero counts, and looking does not track it.
func (t *Transport) Status(host string) HostStatus {
	if b := t.find(host); b != nil {
		return b.status(&t.s)
	}
	return HostStatus{Host: t.hostKey(host), State: StateClosed}
}

// Snapshot describes every tracked host, sorted by Host; each entry is
// consistent in itself.
func (t *Transport) Snapshot() []HostStatus {
	all := t.hosts.all()
	list := make([]HostStatus, len(all))
	for i, b := range all {
		list[i] = b.status(&t.s)
	}
	slices.SortFunc(list, func(a, b HostStatus) int { return strings.Compare(a.Host, b.Host) })
	return list
}
