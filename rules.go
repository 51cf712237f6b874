package httpbreaker

import "net/http"

// The rules beyond the circuit, listed once, in RoundTrip's order. Each is
// a room of its own — its state, admission, accounting, status and reset
// in one file — and this table is the only place that names them all:
//
//	throttle.go     Policy.Throttle             admission (never a probe), refusals, closed calls
//	concurrency.go  Policy.MaxConcurrent        admission (a slot), release, the slot's body
//	adaptive.go     Policy.AdaptiveConcurrency  the cap's limit; learns from calls and probes
//	shedding.go     either of the first two     refusals counted as shed, the shedding news
//	budget.go       Policy.RetryBudget          Transport.AllowRetry, off the request's path
//	hedge.go        Policy.HedgeAfter           the send as a race of attempts, gated by the others
//
// hostRules' methods are the steps, each a direct call to each rule behind
// the policy's flag: no interface, so a rule the policy leaves off costs a
// call nothing but the flag's test, and a step no rule of the policy takes
// part in is not called at all (ruleSet's step flags).

// ruleSet says which rules the policy turns on, and so which steps of the
// table any rule takes part in: RoundTrip calls a step only then. Derived
// once, with the Transport (shared.init), and part of every host's shared.
type ruleSet struct {
	throttles bool // Policy.Throttle
	caps      bool // Policy.MaxConcurrent, the cap
	adapts    bool // Policy.AdaptiveConcurrency: the cap's limit moves
	budgets   bool // Policy.RetryBudget
	hedges    bool // Policy.HedgeAfter
	sheds     bool // a rule that refuses for overload is on

	hosted   bool // a rule keeps state per host: hostMore is made with the host
	admits   bool // a rule takes part in admit, refused and release
	sends    bool // a rule takes part in the send (the cap)
	races    bool // a rule sends attempts of its own (hedging): race, not send
	accounts bool // a rule hears each call's verdict (account)
}

func newRuleSet(p Policy) ruleSet {
	r := ruleSet{
		throttles: p.Throttle > 0,
		caps:      p.MaxConcurrent > 0,
		adapts:    p.AdaptiveConcurrency,
		budgets:   p.RetryBudget > 0,
		hedges:    p.HedgeAfter > 0,
	}
	r.sheds = r.throttles || r.caps
	r.hosted = r.sheds || r.budgets || r.hedges
	r.admits, r.sends, r.races, r.accounts = r.sheds, r.caps, r.hedges, r.sheds
	return r
}

// hostRules is a host's state for each rule the policy turns on (nil, or
// empty, for the others). Made with the host, then only read.
type hostRules struct {
	throttle *throttle
	slots    *concurrencyCap
	limit    *adaptiveLimit
	shedding *shedding
	budget   retryBudgets // made at the host's first AllowRetry
	hedge    *hedging
}

// init makes the state of each rule the policy turns on for host.
func (r *hostRules) init(host string, s *shared) {
	if s.throttles {
		r.throttle = newThrottle(host)
	}
	if s.caps {
		r.slots = newConcurrencyCap(host, s.adapts)
	}
	if s.adapts {
		r.limit = newAdaptiveLimit(s)
	}
	if s.sheds {
		r.shedding = new(shedding)
	}
	if s.hedges {
		r.hedge = new(hedging)
	}
}

// admit asks each rule, in order, whether a call the circuit of b
// admitted may go: the throttle (never for a probe), then the concurrency
// cap under its limit, static or adaptive (which may stamp the ticket to
// time the call). A refusal comes back counted (refused), or as
// errEvicted when the host was forgotten to make room as the call took
// its slot: the slot is given back, and the call must start again on the
// key's new host.
func (r *hostRules) admit(s *shared, b *breaker, tk ticket, c Criticality) (ticket, *OverloadError) {
	if s.throttles && !tk.probe && r.throttle.refuses(s, c) {
		r.refused(s, b, tk)
		return tk, &r.throttle.refusal
	}
	if s.caps {
		limit := s.policy.MaxConcurrent
		if s.adapts {
			limit, tk = r.limit.admits(s, c, tk)
		}
		if !r.slots.acquire(limit) {
			r.refused(s, b, tk)
			return tk, &r.slots.refusal
		}
		if b.forgotten.Load() {
			r.slots.release()
			return tk, errEvicted
		}
	}
	return tk, nil
}

// errEvicted is admit's word for a call whose host was forgotten as it
// took its slot; never returned to a caller.
var errEvicted = new(OverloadError)

// refused counts a call refused for overload: as shed, and by the
// throttle as a request the host did not accept (a probe's refusal is
// shed, and no more).
func (r *hostRules) refused(s *shared, b *breaker, tk ticket) {
	now := s.clock()
	r.shedding.refused(s, b, now, tk.probe)
	if s.throttles && !tk.probe {
		r.throttle.refused(s, now)
	}
}

// send sends req for a call the cap admitted to base: the call's slot
// passes to the response body. Only under MaxConcurrent, without hedging.
func (r *hostRules) send(req *http.Request, base http.RoundTripper) (*http.Response, error) {
	return r.slots.send(req, base)
}

// race sends req for a closed call (never a probe) the circuit of b
// admitted to base, under HedgeAfter: as a race of hedged attempts if it
// is replayable, the first answer classify calls a success winning.
func (r *hostRules) race(s *shared, b *breaker, req *http.Request, base http.RoundTripper, classify Classifier) (*http.Response, error) {
	return r.hedge.send(s, b, r, req, base, classify)
}

// account counts a call's verdict for each rule: a closed call's by the
// throttle and for the shedding news; every answer, a probe's too, by the
// adaptive limit, with the calls in flight as it came. req and resp are
// the HTTP call's (resp nil for no answer); both nil for a call that is
// not HTTP (Transport.Allow), which still holds its slot.
func (r *hostRules) account(s *shared, b *breaker, tk ticket, v verdict, req *http.Request, resp *http.Response) {
	if !tk.probe {
		if s.throttles {
			r.throttle.account(s, v)
		}
		r.shedding.account(s, b, v)
	}
	if s.adapts {
		var status int
		var inFlight int64
		if req == nil {
			status, inFlight = callAnswer(v), r.slots.inFlight.Load()
		} else {
			status = answer(resp)
			inFlight = r.slots.inFlightAnswering(req, resp, status)
		}
		r.limit.learn(s, tk.start, v.at, status, inFlight)
	}
}

// release frees what an admitted call that will not be sent holds of the
// rules: its concurrency slot, under MaxConcurrent.
func (r *hostRules) release(s *shared) {
	if s.caps {
		r.slots.release()
	}
}

// status fills each rule's part of a host's status (st has the circuit's).
// Only when hosted.
func (r *hostRules) status(s *shared, st *HostStatus) {
	if s.budgets {
		r.budget.status(st)
	}
	if s.hedges {
		r.hedge.status(st)
	}
	if !s.sheds {
		return
	}
	now := s.clock()
	r.shedding.status(s, st, now)
	if s.throttles {
		r.throttle.status(s, st, now)
	}
	if s.caps {
		r.slots.status(s, st)
	}
	if s.adapts {
		r.limit.status(st)
	}
}

// reset empties what the rules learned of the host (ClearState). Only
// when hosted.
func (r *hostRules) reset(s *shared) {
	if s.throttles {
		r.throttle.reset()
	}
	if s.adapts {
		r.limit.reset(s)
	}
	if s.budgets {
		r.budget.reset()
	}
}

// untracked fills the rules' part of the status of a host not tracked:
// under a cap, the Limit its first call meets (static, or adaptive from its
// ceiling).
func (s *shared) untracked(st *HostStatus) {
	if s.caps {
		st.Limit = s.policy.MaxConcurrent
	}
}

// busy reports whether calls hold concurrency slots of the host's: such a
// host is never forgotten to make room. Only under MaxConcurrent.
func (b *breaker) busy() bool { return b.more.rules.slots.busy() }

// callAnswer is what a call that is not HTTP answered, as a status: a
// success is an answer whose latency the adaptive limit learns, a failure
// one without (as a 503 is: the callee pushing back, or failing fast), an
// ignored call none.
func callAnswer(v verdict) int {
	switch v.outcome {
	case Success:
		return http.StatusOK
	case Failure:
		return http.StatusServiceUnavailable
	}
	return 0
}

// answer is the status code of a call's answer, resp, or 0 when none came
// (send returns a response exactly when it returns no error).
func answer(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}
