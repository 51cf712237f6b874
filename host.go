package httpbreaker

// A host's record is its breaker (breaker.go), which the registry keeps
// per key. What few hosts need hangs off it in hostMore: the events their
// listeners have yet to hear, the failure-rate window, and the state of
// each rule beyond the circuit that the policy turns on — each rule in a
// file of its own, which the breaker never names.

// hostMore is a host's rarely needed parts. A host whose policy has no
// Window and no rule gets it at its first transition, under the breaker's
// mu; otherwise it is made with the host and its rule fields are then
// only read.
type hostMore struct {
	// events are the host's news for listeners (transition.go). Requires
	// the breaker's mu.
	events eventQueue
	// window counts outcomes for the failure-rate rule and the retry
	// budget; nil when neither is on.
	window *rateWindow
	// fleet is the host's part of the fleet protocol (fleet.go); unused
	// without a Store.
	fleet fleetHost

	// The rules beyond the circuit; nil when off.

	throttle *throttle       // Policy.Throttle: throttle.go
	slots    *concurrencyCap // Policy.MaxConcurrent: concurrency.go
	limit    *adaptiveLimit  // Policy.AdaptiveConcurrency: adaptive.go
	shedding *shedding       // either: their refusals, shedding.go
	budget   retryBudgets    // Policy.RetryBudget: budget.go
}

// newHost makes the record of a host, closed, with the parts its policy
// needs at once.
func newHost(key string, s *shared) *breaker {
	b := &breaker{host: key}
	if !s.counts && !s.sheds {
		return b
	}
	m := new(hostMore)
	if s.counts {
		m.window = new(rateWindow)
	}
	if s.throttles {
		m.throttle = newThrottle(key)
	}
	if s.caps {
		m.slots = newConcurrencyCap(key, s.adapts)
	}
	if s.adapts {
		m.limit = newAdaptiveLimit(s)
	}
	if s.sheds {
		m.shedding = new(shedding)
	}
	b.more = m
	return b
}

// status describes the host: its circuit, then each rule's part.
func (b *breaker) hostStatus(s *shared) HostStatus {
	st := b.status(s)
	if s.budgets { // the budget needs Window: more was made with the host
		b.more.budget.status(&st)
	}
	if !s.sheds { // more may be made later, under mu: not read here
		return st
	}
	now := s.clock()
	m := b.more
	m.shedding.status(s, &st, now)
	if s.throttles {
		m.throttle.status(s, &st, now)
	}
	if s.caps {
		m.slots.status(s, &st)
	}
	if s.adapts {
		m.limit.status(&st)
	}
	return st
}

// clearRules empties what the rules learned of the host (ClearState).
func (b *breaker) clearRules(s *shared) {
	if s.throttles {
		b.more.throttle.reset()
	}
	if s.adapts {
		b.more.limit.reset(s)
	}
	if s.budgets {
		b.more.budget.reset()
	}
}

// busy reports whether calls hold concurrency slots of the host's: such a
// host is never forgotten to make room. Only under MaxConcurrent.
func (b *breaker) busy() bool { return b.more.slots.busy() }
