package httpbreaker

// A host's record is its breaker (breaker.go), which the registry keeps
// per key. What few hosts need hangs off it in hostMore: the events their
// listeners have yet to hear, the failure-rate window, the fleet's part,
// and the state of the rules beyond the circuit (rules.go), which the
// breaker never names.

// hostMore is a host's rarely needed parts. A host whose policy has no
// Window and no rule gets it at its first transition, under the breaker's
// mu; otherwise it is made with the host and its rules are then only read.
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
	// rules are the host's state for each rule the policy turns on.
	rules hostRules
}

// newHost makes the record of a host, closed, with the parts its policy
// needs at once.
func newHost(key string, s *shared) *breaker {
	b := &breaker{host: key}
	if !s.counts && !s.hosted {
		return b
	}
	m := new(hostMore)
	if s.counts {
		m.window = new(rateWindow)
	}
	m.rules.init(key, s)
	b.more = m
	return b
}

// hostStatus describes the host: its circuit, then each rule's part.
func (b *breaker) hostStatus(s *shared) HostStatus {
	st := b.status(s)
	if s.hosted { // more was made with the host
		b.more.rules.status(s, &st)
	}
	return st
}

// clearRules empties what the rules learned of the host (ClearState).
func (b *breaker) clearRules(s *shared) {
	if s.hosted {
		b.more.rules.reset(s)
	}
}
