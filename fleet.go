package httpbreaker

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Store shares circuits across a fleet: every Transport that uses one Store
// (one redisstore over one Redis, say) behaves like one breaker per host.
// Without a Store each Transport keeps its circuits in memory.
//
// A Transport calls its Store only off the healthy path — after a failure,
// on the first success after failures, when a circuit opens or closes, and
// to ask for a probe — so a stream of successful requests costs the Store
// nothing. Each call gets a context derived from the request that caused
// it (its values kept, a deadline of a second at most) and must return
// promptly; on an error the Transport goes on with its own local breaker,
// so no request fails because of the Store.
type Store interface {
	// Failure records a failure of host and returns the fleet's run of
	// consecutive failures and, if the fleet's circuit is open, that
	// opening (fleet.Open false if not).
	Failure(ctx context.Context, host string) (failures int, fleet FleetEvent, err error)
	// Success ends the fleet's run of failures of host.
	Success(ctx context.Context, host string) error
	// Open opens host's circuit for the fleet until the given time by this
	// member's clock, or until Reset if it is zero (isolation), and tells
	// every member. Members' clocks may disagree: a Store should carry the
	// time the opening has left, not the instant it ends. Only Reset may end
	// an isolation, even if the Store's backend loses it.
	Open(ctx context.Context, host string, until time.Time) error
	// Reset closes host's circuit for the fleet, forgets its failures and
	// tells every member.
	Reset(ctx context.Context, host string) error
	// AcquireProbe takes one of slots probe leases of host's half-open
	// circuit; ok is false when all are taken. A lease expires by itself,
	// so a member that dies mid-probe cannot wedge the fleet. ctx is the
	// request's own: a caller that gives up stops waiting.
	AcquireProbe(ctx context.Context, host string, slots int) (lease string, ok bool, err error)
	// ReleaseProbe gives a lease back.
	ReleaseProbe(ctx context.Context, host, lease string) error
	// Subscribe delivers to f the fleet's openings and closings, the
	// Transport's own included, until unsubscribe is called or the Store is
	// closed. Before it returns it delivers the openings and isolations in
	// force (so a member that joins late never sends to an isolated host),
	// and after a gap in its subscription it delivers what changed meanwhile.
	Subscribe(f func(FleetEvent)) (unsubscribe func())
}

// FleetEvent is an opening or closing a Store delivers.
type FleetEvent struct {
	// Host is the breaker key.
	Host string
	// Open is true for an opening, false for a closing.
	Open bool
	// Until is when an opening ends by the receiving member's clock; zero
	// for an isolation.
	Until time.Time
}

// storeTimeout bounds what the Transport waits for its Store; a Store
// should bound its own operations more tightly.
const storeTimeout = time.Second

// storeContext is the context of a Store call made on req's behalf (nil:
// an operator's call): req's values, such as the trace, without its
// cancellation — the bookkeeping must happen even if the caller has gone —
// and the store timeout.
func storeContext(req *http.Request) (context.Context, context.CancelFunc) {
	ctx := context.Background()
	if req != nil {
		ctx = context.WithoutCancel(req.Context())
	}
	return context.WithTimeout(ctx, storeTimeout)
}

// fleet is the Transport's link to its Store.
type fleet struct {
	store       Store
	unsubscribe func()
	closeOnce   sync.Once
}

// Close unsubscribes the Transport from its Store, if it has one: it no
// longer hears the fleet, and its own circuits go on locally. Requests
// still work; Close is safe to call more than once. It does not close the
// Store, which may serve other Transports.
func (t *Transport) Close() error {
	if t.fleet != nil {
		t.fleet.closeOnce.Do(t.fleet.unsubscribe)
	}
	return nil
}

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
		if b := t.hosts.obtain(ev.Host, &t.s); b != nil { // an open host is worth tracking, if there is room
			b.adoptOpen(&t.s, until)
		}
	}
}

// tellStore reports a closed-path call to the Store: a failure counts for
// the fleet (and may open the fleet's circuit); the first success after
// failures ends the fleet's run. Successes of a healthy host say nothing.
func (t *Transport) tellStore(req *http.Request, b *breaker, tk ticket, o Outcome, hadFailures bool) {
	store := t.fleet.store
	switch {
	case o == Ignore:
	case o == Success:
		if hadFailures {
			ctx, cancel := storeContext(req)
			defer cancel()
			_ = store.Success(ctx, b.host)
		}
	default:
		if w := b.load(); w.gen() != tk.gen {
			if w.state() == StateOpen { // this call, or one beside it, opened the circuit
				t.announceOpen(req, b)
			}
			return
		}
		ctx, cancel := storeContext(req)
		n, fleet, err := store.Failure(ctx, b.host)
		cancel()
		switch {
		case err != nil: // the local breaker has counted it: go on alone
		case fleet.Open:
			t.adopt(fleet)
		case n >= t.s.policy.FailureThreshold:
			if b.trip(&t.s, tk.gen, verdict{outcome: Failure}, true) {
				t.announceOpen(req, b)
			}
		}
	}
}

// announceOpen tells the fleet that b's circuit is open, and until when.
func (t *Transport) announceOpen(req *http.Request, b *breaker) {
	until := b.refusal.Load().RetryAt // zero for an isolated host
	ctx, cancel := storeContext(req)
	defer cancel()
	_ = t.fleet.store.Open(ctx, b.host, until)
}

// fleetProbe asks the Store for a probe lease, waiting no longer than the
// caller does; ok is false if the fleet's probes are all taken. If the
// Store fails, the local breaker decides alone. err is the caller's, if it
// gave up meanwhile: a probe sent now would fail on its own deadline and
// reopen the circuit of a host that may be healthy. done, to call with the
// state word when the probe is over, tells the fleet how it ended and gives
// the lease back.
func (t *Transport) fleetProbe(req *http.Request, b *breaker, tk ticket) (done func(after word), ok bool, err error) {
	ctx, cancel := context.WithTimeout(req.Context(), storeTimeout)
	lease, ok, storeErr := t.fleet.store.AcquireProbe(ctx, b.host, t.s.policy.HalfOpenMaxRequests)
	cancel()
	if storeErr == nil && !ok {
		return nil, false, nil
	}
	release := func() {
		if storeErr == nil {
			ctx, cancel := storeContext(req)
			defer cancel()
			_ = t.fleet.store.ReleaseProbe(ctx, b.host, lease)
		}
	}
	if req.Context().Err() != nil {
		release()
		return nil, true, context.Cause(req.Context())
	}
	return func(w word) {
		t.announceProbe(req, b, tk, w)
		release()
	}, true, nil
}

// announceProbe tells the fleet how a probe ended, given the state word
// after it: closed or reopened.
func (t *Transport) announceProbe(req *http.Request, b *breaker, tk ticket, w word) {
	if w.gen() == tk.gen {
		return // still half-open: an ignored probe, or more successes needed
	}
	switch w.state() {
	case StateClosed:
		ctx, cancel := storeContext(req)
		defer cancel()
		_ = t.fleet.store.Reset(ctx, b.host)
	case StateOpen:
		t.announceOpen(req, b)
	}
}

// adoptOpen opens the circuit until until, as the fleet says, unless it
// already is open until then or later, or isolated.
func (b *breaker) adoptOpen(s *shared, until int64) {
	now := s.clock()
	b.mu.Lock()
	for {
		w := b.load()
		if b.isolated || w.state() == StateOpen && b.retryAt.Load() >= until ||
			b.transition(s, w, StateOpen, now, until) {
			break
		}
	}
	b.unlockAndNotify(s)
}
