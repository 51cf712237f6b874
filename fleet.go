package httpbreaker

import (
	"context"
	"sync"
	"sync/atomic"
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
//
// The Store judges when the fleet's failures open a host for every member
// (redisstore asks for a quorum of members); a member whose own failures
// open its circuit without that verdict keeps the opening, and its probes,
// to itself.
type Store interface {
	// Failure records a failure of report.Host by this member and returns
	// the fleet's verdict: whether the fleet's failures, this one
	// included, make the case for opening the host for every member, and
	// the fleet's opening in force, if any.
	Failure(ctx context.Context, report FailureReport) (FleetVerdict, error)
	// Success ends this member's run of failures of host.
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

// FailureReport is what a member tells its Store of one failure of a host:
// a call that failed while the circuit was closed, or a failed probe of a
// circuit the member opened on its own.
type FailureReport struct {
	// Host is the breaker key.
	Host string
	// Run is the member's own run of consecutive failures of Host, this
	// one included: the count its breaker holds, or Threshold once its
	// circuit opened on the member's own evidence (the consecutive count,
	// the failure rate or a Retry-After).
	Run int
	// Threshold is the member's Policy.FailureThreshold.
	Threshold int
}

// FleetVerdict is a Store's answer to a FailureReport.
type FleetVerdict struct {
	// Trip is set when the fleet's failures, with the report's, make the
	// case for opening the host for every member: the member then opens its
	// circuit and tells the fleet (Store.Open).
	Trip bool
	// Fleet is the fleet's opening in force; Fleet.Open is false if none.
	Fleet FleetEvent
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

// storeContext is the context of a Store call made on behalf of a call
// whose context is ctx (nil: an operator's call): ctx's values, such as the
// trace, without its cancellation — the bookkeeping must happen even if
// the caller has gone — and the store timeout.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	base := context.Background()
	if ctx != nil {
		base = context.WithoutCancel(ctx)
	}
	return context.WithTimeout(base, storeTimeout)
}

// fleet is the Transport's link to its Store.
type fleet struct {
	store       Store
	unsubscribe func()
	closeOnce   sync.Once
}

// Close releases what the Transport holds of its own: it unsubscribes from
// its Store, if it has one (it no longer hears the fleet, and its circuits
// go on locally), and closes the idle connections of the pooled transport
// New made for a nil base. Requests still work (a new connection is
// dialled); Close is safe to call more than once. It closes neither the
// Store, which may serve other Transports, nor a base you passed to New:
// those stay yours (CloseIdleConnections reaches a base's idle connections).
func (t *Transport) Close() error {
	if t.fleet != nil {
		t.fleet.closeOnce.Do(t.fleet.unsubscribe)
	}
	if t.owned {
		t.CloseIdleConnections()
	}
	return nil
}

// adopt applies an opening or closing the fleet announced. Announcements
// of this Transport's own transitions find the breaker already there and
// change nothing. A closing closes every member's circuit, one the member
// opened on its own included: the host answered the fleet's probe, or an
// operator cleared it.
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
// failures ends the member's run. Successes of a healthy host say nothing.
func (t *Transport) tellStore(ctx context.Context, b *breaker, tk ticket, o Outcome, hadFailures bool) {
	switch {
	case o == Ignore:
	case o == Success:
		if hadFailures {
			t.endRun(ctx, b)
		}
	default:
		w := b.load()
		switch {
		case w.gen() == tk.gen: // still closed: the member's run grows
			said, err := t.reportFailure(ctx, b, max(w.failures(), 1))
			switch {
			case err != nil: // the local breaker has counted it: go on alone
			case said.Fleet.Open:
				t.adopt(said.Fleet)
			case said.Trip:
				if b.trip(&t.s, tk.gen, verdict{outcome: Failure}, true) {
					t.announceOpen(ctx, b)
				}
			}
		case w.state() == StateOpen && !b.refusal().Isolated: // this call, or one beside it, opened the circuit
			t.openedOwn(ctx, b, w, false)
		}
	}
}

// openedOwn tells the fleet that the member's circuit opened, in the word
// w, on the member's own evidence: a report with the whole threshold.
// With the fleet's verdict the opening reaches every member; without it,
// it stays the member's own, and so do its probes (fleetHost) — also when
// the fleet's opening comes later, unless the member had none (wasOwn
// false) when the fleet's was already there. A Store in trouble leaves
// the member alone.
func (t *Transport) openedOwn(ctx context.Context, b *breaker, w word, wasOwn bool) {
	said, err := t.reportFailure(ctx, b, t.s.policy.FailureThreshold)
	if err == nil && said.Trip && !said.Fleet.Open {
		t.announceOpen(ctx, b)
		return
	}
	if err != nil || wasOwn || !said.Fleet.Open {
		b.more.fleet.openedAlone(w)
	}
	if err == nil && said.Fleet.Open {
		t.adopt(said.Fleet)
	}
}

// reportFailure tells the Store of a failure of b's host, with the
// member's own run.
func (t *Transport) reportFailure(ctx context.Context, b *breaker, run int) (FleetVerdict, error) {
	sctx, cancel := storeContext(ctx)
	defer cancel()
	return t.fleet.store.Failure(sctx, FailureReport{Host: b.host, Run: run, Threshold: t.s.policy.FailureThreshold})
}

// endRun tells the Store that the member's run of failures of b's host is
// over.
func (t *Transport) endRun(ctx context.Context, b *breaker) {
	sctx, cancel := storeContext(ctx)
	defer cancel()
	_ = t.fleet.store.Success(sctx, b.host)
}

// announceOpen tells the fleet that b's circuit is open, and until when.
func (t *Transport) announceOpen(ctx context.Context, b *breaker) {
	until := b.refusal().RetryAt // zero for an isolated host
	sctx, cancel := storeContext(ctx)
	defer cancel()
	_ = t.fleet.store.Open(sctx, b.host, until)
}

// fleetProbe asks the Store for a probe lease, waiting no longer than the
// caller does; ok is false if the fleet's probes are all taken. If the
// Store fails, the local breaker decides alone. err is the caller's, if it
// gave up meanwhile: a probe sent now would fail on its own deadline and
// reopen the circuit of a host that may be healthy. done, to call with the
// state word when the probe is over, tells the fleet how it ended and gives
// the lease back.
//
// A circuit the member opened on its own probes on its own: no lease, and
// its end speaks for the member only (ownProbeEnded).
func (t *Transport) fleetProbe(ctx context.Context, b *breaker, tk ticket) (done func(after word), ok bool, err error) {
	if b.more.fleet.probesAlone(tk) {
		return func(w word) { t.ownProbeEnded(ctx, b, tk, w) }, true, nil
	}
	wait, cancel := context.WithTimeout(ctx, storeTimeout)
	lease, ok, storeErr := t.fleet.store.AcquireProbe(wait, b.host, t.s.policy.HalfOpenMaxRequests)
	cancel()
	if storeErr == nil && !ok {
		return nil, false, nil
	}
	release := func() {
		if storeErr == nil {
			sctx, cancel := storeContext(ctx)
			defer cancel()
			_ = t.fleet.store.ReleaseProbe(sctx, b.host, lease)
		}
	}
	if ctx.Err() != nil {
		release()
		return nil, true, context.Cause(ctx)
	}
	return func(w word) {
		t.announceProbe(ctx, b, tk, w)
		release()
	}, true, nil
}

// announceProbe tells the fleet how a probe ended, given the state word
// after it: closed or reopened.
func (t *Transport) announceProbe(ctx context.Context, b *breaker, tk ticket, w word) {
	if w.gen() == tk.gen {
		return // still half-open: an ignored probe, or more successes needed
	}
	switch w.state() {
	case StateClosed:
		sctx, cancel := storeContext(ctx)
		defer cancel()
		_ = t.fleet.store.Reset(sctx, b.host)
	case StateOpen:
		t.announceOpen(ctx, b)
	}
}

// ownProbeEnded tells the Store how a probe of the member's own opening
// ended: closed, the member's run is over; reopened, the member reports
// the failure again, which keeps its vote fresh and may make the fleet's
// case.
func (t *Transport) ownProbeEnded(ctx context.Context, b *breaker, tk ticket, w word) {
	switch {
	case w.gen() == tk.gen: // still half-open
	case w.state() == StateClosed:
		t.endRun(ctx, b)
	case w.state() == StateOpen:
		t.openedOwn(ctx, b, w, true)
	}
}

// fleetHost is a host's part of the fleet protocol, in its hostMore.
type fleetHost struct {
	// ownProbes is the generation of the half-open period that follows an
	// opening the member made on its own — the fleet did not open with
	// it — so the generation of the probes that are the member's own: it
	// takes no lease for them and their end speaks for it alone. Any other
	// transition moves the generation past it. 0 for none.
	ownProbes atomic.Uint32
}

// openedAlone records that the opening in the word w is the member's own.
func (f *fleetHost) openedAlone(w word) { f.ownProbes.Store(w.gen() + 1) }

// probesAlone reports whether the probe tk is the member's own.
func (f *fleetHost) probesAlone(tk ticket) bool { return f.ownProbes.Load() == tk.gen }

// ownIn reports whether the word w, open or half-open, is of the member's
// own opening.
func (f *fleetHost) ownIn(w word) bool {
	switch w.state() {
	case StateOpen:
		return f.ownProbes.Load() == w.gen()+1
	case StateHalfOpen:
		return f.ownProbes.Load() == w.gen()
	}
	return false
}
