package httpbreaker

import "sync/atomic"

// throttle is a host's adaptive client-side throttling (Policy.Throttle,
// the Google SRE book's): while the circuit is closed it refuses calls
// with probability max(0, (requests − K·accepts) / (requests + 1)) over
// the rules' window (Window, or DefaultRuleWindow), capped at MaxThrottle, once the window holds MinimumRequests
// requests. Made with the host when the policy sets Throttle.
//
// Its windows are its own and outlive an open period: a good probe does
// not mean the overload ended, and a throttle starting empty after each
// close would let the first calls through at full rate, into the breaker's
// consecutive rule. ClearState empties them.
type throttle struct {
	// calls counts the accepts (as successes) and the other requests —
	// failures and refusals for overload — (as failures) while closed.
	calls rateWindow
	// mix counts, as failures, the calls attempted at each criticality
	// (Sheddable, Critical, CriticalPlus) while the throttle refuses: what
	// its refusals are shared out over. Made the first time it refuses, so
	// a host never throttled pays a pointer for it.
	mix atomic.Pointer[[3]rateWindow]
	// refusal is what its refusals return, built once.
	refusal OverloadError
}

func newThrottle(host string) *throttle {
	return &throttle{refusal: OverloadError{Host: host, Throttled: true}}
}

// refuses draws whether the throttle refuses a call of criticality c.
// While the window holds nothing but accepts — a healthy host — it costs
// two atomic loads per window and reads no clock. Probes are never
// throttled: the caller asks only for calls the circuit admitted closed.
func (th *throttle) refuses(s *shared, c Criticality) bool {
	if !th.calls.failedWithin(th.calls.newest.Load()) {
		return false // nothing but accepts: p is 0 for Throttle ≥ 1
	}
	index := s.bucket(s.clock())
	p := th.probability(s, index)
	if p == 0 {
		return false
	}
	mix := th.attempts()
	mix[c+1].record(index, true)
	return s.random() < refusalChance(mix, index, c, p)
}

// probability is the share of calls the throttle refuses, over the window
// ending with the bucket of index: the book's probability, capped at
// MaxThrottle, once the window holds MinimumRequests requests (below it,
// one failure of a quiet host would refuse half its next calls).
func (th *throttle) probability(s *shared, index int64) float64 {
	accepts, others := th.calls.counts(index)
	if accepts+others < s.policy.MinimumRequests {
		return 0
	}
	requests := float64(accepts + others)
	p := (requests - s.policy.Throttle*float64(accepts)) / (requests + 1)
	return min(max(p, 0), s.policy.MaxThrottle)
}

// refusalChance is the probability of refusing a call of criticality c
// when the throttle refuses a share p of all calls: the refusals go to the lowest
// criticalities first, in proportion to the calls each attempted (see
// Criticality).
func refusalChance(mix *[3]rateWindow, index int64, c Criticality, p float64) float64 {
	var attempts [3]float64
	total := 0.0
	for i := range mix {
		_, n := mix[i].counts(index)
		attempts[i] = float64(n)
		total += attempts[i]
	}
	refusals := p * total
	for level := range int(c) + 2 {
		if attempts[level] == 0 {
			continue
		}
		q := min(1, refusals/attempts[level])
		if level == int(c)+1 {
			return q
		}
		refusals -= q * attempts[level]
	}
	return p // no call of c in the window: cannot happen, c's was just counted
}

// attempts returns the criticality mix, making it on first use.
func (th *throttle) attempts() *[3]rateWindow {
	if mix := th.mix.Load(); mix != nil {
		return mix
	}
	th.mix.CompareAndSwap(nil, new([3]rateWindow))
	return th.mix.Load()
}

// refused counts a call refused for overload, by this rule or another, as
// a request the host did not accept.
func (th *throttle) refused(s *shared, now int64) { th.calls.record(s.bucket(now), true) }

// account counts a closed-path call's verdict: an accept, or a request
// the host did not accept. Throttle needs Window, so v.at was read.
func (th *throttle) account(s *shared, v verdict) {
	if v.outcome != Ignore {
		th.calls.record(s.bucket(v.at), v.outcome == Failure)
	}
}

// reset empties the throttle's windows (ClearState).
func (th *throttle) reset() {
	th.calls.reset()
	if mix := th.mix.Load(); mix != nil {
		for i := range mix {
			mix[i].reset()
		}
	}
}

// status fills the throttle's part of a closed host's status.
func (th *throttle) status(s *shared, st *HostStatus, now int64) {
	if st.State == StateClosed {
		st.Throttle = th.probability(s, s.bucket(now))
	}
}
