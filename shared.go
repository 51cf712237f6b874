package httpbreaker

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// shared is what every host of a Transport has in common: the policy, the
// clock, the listeners, the transition counts and which rules are on. It
// lives once in the Transport and is passed to each host's calls rather
// than held by every host, which keeps a tracked host to a few dozen bytes.
type shared struct {
	policy Policy // with defaults applied
	now    func() time.Time
	epoch  time.Time // offsets are measured from here
	// monotonic is set when now is time.Now (no WithClock): clock then
	// reads the monotonic clock alone, with time.Since, which costs half
	// of time.Now's two clock readings.
	monotonic bool
	listeners []func(Transition)
	// transitions counts every state change of every host, by from and to.
	transitions [3][3]atomic.Uint64
	// ruleSet says which rules beyond the circuit are on (rules.go); they
	// say which parts every host record carries (hostRules).
	ruleSet
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
	// random draws the throttle's refusals: math/rand/v2's per-goroutine
	// source, without a lock or an allocation.
	random func() float64
}

// init derives, once, what a Transport's hosts share from its policy
// (with defaults applied): every flag the request's path tests.
// A nil now is time.Now.
func (s *shared) init(policy Policy, now func() time.Time, listeners []func(Transition)) {
	if s.monotonic = now == nil; s.monotonic {
		now = time.Now
	}
	s.policy, s.now, s.epoch, s.listeners = policy, now, now(), listeners
	s.ruleSet = newRuleSet(policy)
	s.timed = policy.Window > 0 || policy.SlowCall > 0 || policy.Throttle > 0 || policy.RetryBudget > 0
	s.window = policy.ruleWindow()
	s.counts, s.rates = policy.Window > 0 || policy.RetryBudget > 0, policy.Window > 0
	s.plain = !s.timed && !s.accounts && policy.MaxRetryAfter == 0
	s.random = rand.Float64
}

// offset turns an instant into the int64 the hosts work with: time since
// the Transport was made. Using Sub keeps the monotonic clock reading of
// real instants.
func (s *shared) offset(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// clock reads the clock, as an offset.
func (s *shared) clock() int64 {
	if s.monotonic {
		return int64(time.Since(s.epoch)) // offset(time.Now()), one reading
	}
	return s.offset(s.now())
}

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
