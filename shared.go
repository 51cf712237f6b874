package httpbreaker

import (
	"sync/atomic"
	"time"
)

// shared is what every host of a Transport has in common: the policy, the
// clock, the listeners, the transition counts and which rules are on. It
// lives once in the Transport and is passed to each host's calls rather
// than held by every host, which keeps a tracked host to a few dozen bytes.
type shared struct {
	policy    Policy // with defaults applied
	now       func() time.Time
	epoch     time.Time // offsets are measured from here
	listeners []func(Transition)
	// transitions counts every state change of every host, by from and to.
	transitions [3][3]atomic.Uint64
	// timed is set when the policy reads the clock on every call.
	timed bool
	// window is what the windowed rules count over (Policy.ruleWindow):
	// the rate window's buckets and the throttle's and the budget's.
	window time.Duration
	// counts is set when hosts keep the rate window: for rate tripping
	// (rates, under Policy.Window) or for the retry budget, which reads
	// the calls from it.
	counts, rates bool
	// plain is set when the policy has no timed rule, ignores Retry-After
	// and has no rule beyond the circuit: results then take reportPlain.
	plain bool

	// The rules beyond the circuit, each a room of its own; set from the
	// policy, they say which parts every host record carries (hostMore).

	// throttles is set under Policy.Throttle (throttle.go).
	throttles bool
	// caps is set under Policy.MaxConcurrent (concurrency.go).
	caps bool
	// adapts is set under Policy.AdaptiveConcurrency: the cap's limit is
	// adaptive (adaptive.go).
	adapts bool
	// sheds is set when either is: refusals for overload (shedding.go).
	sheds bool
	// budgets is set under Policy.RetryBudget (budget.go).
	budgets bool
	// random draws the throttle's refusals: math/rand/v2's per-goroutine
	// source, without a lock or an allocation.
	random func() float64
}

// offset turns an instant into the int64 the hosts work with: time since
// the Transport was made. Using Sub keeps the monotonic clock reading of
// real instants.
func (s *shared) offset(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// clock reads the clock, as an offset.
func (s *shared) clock() int64 { return s.offset(s.now()) }

// instant turns an offset back into a time.
func (s *shared) instant(off int64) time.Time { return s.epoch.Add(time.Duration(off)) }

// never is the retry offset of an isolated circuit, and what saturated
// offsets clamp to. Whether a circuit is isolated is b.isolated, never this
// value: a huge ResetTimeout or Retry-After reaches it too.
const never = 1<<63 - 1

// later returns off + d, saturating instead of overflowing.
func later(off int64, d time.Duration) int64 {
	if sum := off + int64(d); sum >= off {
		return sum
	}
	return never
}
