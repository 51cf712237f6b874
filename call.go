package httpbreaker

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
)

// Calls that are not HTTP requests — gRPC, a database, a queue — go through
// the same circuits: one registry, so a key used by WithKey and by Allow is
// one circuit, with the same policy, rules, listeners, status, bound and
// Store. What only HTTP has stays with HTTP: Retry-After, the stale cache
// and the fallback never act on these calls, and Transport.AllowRetry asks
// about requests (AllowRetryCall and CanRetryCall ask about keys).

// Allow asks the circuit named key (used as given, as WithKey's is) and the
// policy's rules whether a call may start now. On success the call must end
// with done(outcome) exactly once — Success, Failure or Ignore (any other
// Outcome counts as Failure); later calls of done do nothing. A refusal is
// an [*OpenError] or an [*OverloadError] (errors.Is ErrCircuitOpen or
// ErrOverloaded), counted as rejected, and done is nil.
//
// ctx carries the call's criticality ([WithCriticality]) and
// [WithoutBreaker]; it bounds the wait for a fleet's probe lease (its
// error comes back if it ends first) and gives the Store's bookkeeping its
// values. Latency for SlowCall and the adaptive limit is measured from
// Allow to done, and a concurrency slot (MaxConcurrent) is held from Allow
// to done, as a half-open probe's slot is: call done on every path, in a
// defer if the call can panic. A done that is never called and dropped is
// collected like an unclosed response body: the collector ends the call
// as Ignore and gives its slots back, late — so a leak shows as slots held
// and calls refused until then. [Transport.Do] does all of it for you.
//
// A circuit that has no room under [WithMaxHosts], and a ctx
// WithoutBreaker, allow every call and count none. Allow allocates the
// done func (two small objects); Do allocates nothing.
func (t *Transport) Allow(ctx context.Context, key string) (done func(Outcome), err error) {
	var a admission
	if err := t.allow(&a, ctx, key); err != nil {
		return nil, err
	}
	if a.b == nil {
		return func(Outcome) {}, nil
	}
	p := &pending{a: a}
	if a.holds() {
		runtime.SetFinalizer(p, (*pending).abandoned)
	}
	return p.done, nil
}

// Do runs call under the circuit named key, as Allow admits it: refused,
// it returns the refusal and never calls. Else call runs with ctx, and
// its error is judged by the error classifier ([DefaultErrorClassifier]:
// nil succeeds, the caller's own cancellation is ignored, any other error
// fails; [WithErrorClassifier] sets another) and returned unchanged. A call
// that panics tells the circuit nothing: the panic goes on, and a slot it
// held (a concurrency slot, a probe's) is given back, the call counted as
// ignored.
func (t *Transport) Do(ctx context.Context, key string, call func(context.Context) error) error {
	if call == nil {
		return errNilCall
	}
	var a admission
	if err := t.allow(&a, ctx, key); err != nil {
		return err
	}
	if a.b != nil && a.holds() {
		return a.doHolding(ctx, call)
	}
	err := call(ctx) // holding nothing, a panic leaves nothing to give back: no defer
	a.end(t.classifyDo(ctx, err))
	return err
}

// doHolding is Do for a call that holds a slot, given back if it panics.
func (a *admission) doHolding(ctx context.Context, call func(context.Context) error) error {
	ended := false
	defer func() {
		if !ended {
			a.end(Ignore)
		}
	}()
	err := call(ctx)
	ended = true
	a.end(a.t.classifyDo(ctx, err))
	return err
}

// classifyDo judges the error of a call made with Do. When ctx was
// canceled the classifier sees an error matching context.Canceled,
// whatever the call returned (a driver may return its own error, or the
// cancellation's cause).
func (t *Transport) classifyDo(ctx context.Context, err error) Outcome {
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		err = canceledError{err}
	}
	if t.classifyErr == nil {
		return DefaultErrorClassifier(err)
	}
	return t.classifyErr(err)
}

// admission is a call Allow admitted, until it ends.
type admission struct {
	t *Transport
	b *breaker // nil: no circuit (WithoutBreaker, or no room under the bound)
	// tk is the circuit's ticket, stamped by the rules that time the call.
	tk ticket
	// ctx is the caller's, for the Store's bookkeeping.
	ctx context.Context
	// hadFailures is set when a closed call started in a run of failures:
	// its success ends the member's run for the fleet.
	hadFailures bool
	// leased, for a probe with a fleet, tells the fleet how it ended and
	// gives the lease back.
	leased func(after word)
}

// allow admits a call to the circuit named key into a, as RoundTrip admits
// a request, or says why not. (a is the caller's: an admission returned by
// value costs Do a copy of it.)
func (t *Transport) allow(a *admission, ctx context.Context, key string) error {
	switch {
	case t.base == nil:
		return errNotNew
	case ctx == nil:
		return errNilContext
	case key == "":
		return errEmptyKey
	}
	var criticality Criticality
	if controlsSeen.Load() {
		c := controlsOf(ctx)
		if c.bypass {
			a.t = t
			return nil
		}
		criticality = c.criticality
	}
	for {
		b := t.hosts.obtain(key, &t.s)
		if b == nil {
			a.t = t
			return nil
		}
		tk, open := b.admit(&t.s) // the circuit
		if open != nil {
			b.rejected()
			return open
		}
		if t.s.admits { // the rules beyond it (rules.go)
			var shed *OverloadError
			switch tk, shed = b.more.rules.admit(&t.s, b, tk, criticality); {
			case shed == errEvicted: // as the call took its slot: again, on the key's new circuit
				t.giveBack(b, tk)
				continue
			case shed != nil:
				if tk.probe {
					b.giveBackProbe()
				}
				b.rejected()
				return shed
			}
		}
		a.t, a.b, a.tk, a.ctx = t, b, tk, ctx
		if !tk.probe {
			a.hadFailures = t.fleet != nil && b.load().failures() > 0
			return nil
		}
		if t.fleet != nil {
			leased, ok, err := t.fleetProbe(ctx, b, tk)
			switch {
			case !ok: // another member holds the fleet's probes
				t.giveBack(b, tk)
				b.rejected()
				return b.refusal()
			case err != nil: // the caller gave up while the Store decided
				t.giveBack(b, tk)
				return err
			}
			a.leased = leased
		}
		return nil
	}
}

// holds reports whether the call holds a slot that must come back: a
// concurrency slot, or a probe's.
func (a *admission) holds() bool { return a.t.s.caps || a.tk.probe }

// end reports the call's outcome as a request's verdict is reported: to the
// circuit, then to the rules, which then give its slot back, then to the
// fleet.
func (a *admission) end(o Outcome) {
	t, b := a.t, a.b
	if b == nil {
		return
	}
	o = o.normal()
	if t.s.plain { // as RoundTrip: no rule needs the clock or the verdict's details
		b.reportPlain(&t.s, a.tk, o)
	} else {
		v := t.timed(a.tk, o)
		o = v.outcome
		b.report(&t.s, a.tk, v)
		if t.s.accounts {
			b.more.rules.account(&t.s, b, a.tk, v, nil, nil)
		}
	}
	if t.s.admits {
		b.more.rules.release(&t.s)
	}
	switch {
	case a.leased != nil:
		a.leased(b.load())
	case !a.tk.probe && t.fleet != nil && (o != Success || a.hadFailures) && !b.forgotten.Load():
		t.tellStore(a.ctx, b, a.tk, o, a.hadFailures)
	}
}

// pending is Allow's done: an admission that ends once.
type pending struct {
	a     admission
	ended atomic.Bool
}

func (p *pending) done(o Outcome) {
	if p.ended.CompareAndSwap(false, true) {
		if p.a.holds() {
			runtime.SetFinalizer(p, nil)
		}
		p.a.end(o)
	}
}

// abandoned runs when a done was dropped uncalled: the call ends as
// Ignore, so that its slots come back. Ending may run listeners and reach
// the Store, so it runs off the finalizer goroutine.
func (p *pending) abandoned() {
	if p.ended.CompareAndSwap(false, true) {
		go p.a.end(Ignore)
	}
}
