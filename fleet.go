package httpbreaker

// This file ties a Transport's breakers to its Store, when it has one.

// adopt applies an opening or closing the fleet announced. Announcements
// of this Transport's own transitions find the breaker already there and
// change nothing.
func (t *Transport) adopt(ev FleetEvent) {
	switch {
	case !ev.Open:
		if b := t.hosts.lookup(ev.Host); b != nil {
			t.hosts.clear(b, &t.s, true)
		}
	case ev.Until.IsZero():
		t.hosts.isolate(ev.Host, &t.s)
	default:
		until := t.s.offset(ev.Until)
		if until <= t.s.clock() {
			return // over already: a late message must not reopen a circuit that moved on
		}
		t.hosts.obtain(ev.Host, &t.s).adoptOpen(&t.s, until) // an open host is worth tracking
	}
}

// tellStore reports a closed-path call to the Store: a failure counts for
// the fleet (and may open the fleet's circuit); the first success after
// failures ends the fleet's run. Successes of a healthy host say nothing.
func (t *Transport) tellStore(b *breaker, tk ticket, o Outcome, hadFailures bool) {
	switch {
	case o == Ignore:
	case o == Success:
		if hadFailures {
			ctx, cancel := storeContext()
			defer cancel()
			_ = t.store.Success(ctx, b.host)
		}
	default:
		if w := b.load(); w.gen() != tk.gen {
			if w.state() == StateOpen { // this call, or one beside it, opened the circuit
				t.announceOpen(b)
			}
			return
		}
		ctx, cancel := storeContext()
		n, fleet, err := t.store.Failure(ctx, b.host)
		cancel()
		switch {
		case err != nil: // the local breaker has counted it: go on alone
		case fleet.Open:
			t.adopt(fleet)
		case n >= t.s.policy.FailureThreshold:
			if b.trip(&t.s, tk.gen, verdict{outcome: Failure}, true) {
				t.announceOpen(b)
			}
		}
	}
}

// announceOpen tells the fleet that b's circuit is open, and until when.
func (t *Transport) announceOpen(b *breaker) {
	until := b.refusal.Load().RetryAt // zero for an isolated host
	ctx, cancel := storeContext()
	defer cancel()
	_ = t.store.Open(ctx, b.host, until)
}

// fleetProbe asks the Store for a probe lease. It returns release, to call
// when the probe is done, and false if the fleet's probes are all taken.
// If the Store fails, the local breaker decides alone.
func (t *Transport) fleetProbe(b *breaker) (release func(), ok bool) {
	ctx, cancel := storeContext()
	lease, ok, err := t.store.AcquireProbe(ctx, b.host, t.s.policy.HalfOpenMaxRequests)
	cancel()
	if err != nil {
		return func() {}, true
	}
	if !ok {
		return nil, false
	}
	return func() {
		ctx, cancel := storeContext()
		defer cancel()
		_ = t.store.ReleaseProbe(ctx, b.host, lease)
	}, true
}

// announceProbe tells the fleet how a probe ended: closed or reopened.
func (t *Transport) announceProbe(b *breaker, tk ticket) {
	w := b.load()
	if w.gen() == tk.gen {
		return // still half-open: an ignored probe, or more successes needed
	}
	switch w.state() {
	case StateClosed:
		ctx, cancel := storeContext()
		defer cancel()
		_ = t.store.Reset(ctx, b.host)
	case StateOpen:
		t.announceOpen(b)
	}
}
