package httpbreaker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// Transport is an [http.RoundTripper] that keeps one circuit breaker per
// target host in front of a base RoundTripper. Make it with [New]; the zero
// value refuses every request with an error.
//
// A Transport is safe for simultaneous use by multiple goroutines. A request
// to a host whose circuit is closed costs one lookup and a few atomic
// operations: no lock shared across hosts, no clock read, no allocation.
type Transport struct {
	base     http.RoundTripper
	s        settings
	classify Classifier
	methods  methodTable
	keyFunc  func(*http.Request) string // nil: the normalised host
	fallback Fallback                   // nil: refusals return *OpenError
	stale    *staleCache                // nil: no stale-if-error
	fleet    *fleet                     // nil: circuits live in this process only
	hosts    registry
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport that sends requests through base; a nil base means
// go-cleanhttp's pooled transport (like http.DefaultTransport, but not
// shared with the rest of the program). New fails on a nil option, an option
// given an unusable value, or a [Policy] with a field out of range; the
// error names what is wrong.
func New(base http.RoundTripper, opts ...Option) (*Transport, error) {
	methods, err := newMethodTable(DefaultMethods)
	if err != nil {
		return nil, fmt.Errorf("httpbreaker: DefaultMethods: %w", err)
	}
	c := config{classifier: DefaultClassifier, methods: methods, now: time.Now, maxHosts: DefaultMaxHosts}
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("httpbreaker: option %d of New is nil", i)
		}
		if err := opt(&c); err != nil {
			return nil, err
		}
	}
	if err := c.policy.validate(); err != nil {
		return nil, err
	}
	if base == nil {
		base = cleanhttp.DefaultPooledTransport()
	}
	policy := c.policy.withDefaults()
	t := &Transport{
		base: base,
		s: settings{
			policy:    policy,
			now:       c.now,
			epoch:     c.now(),
			listeners: c.listeners,
			timed:     policy.Window > 0 || policy.SlowCall > 0,
			plain:     policy.Window == 0 && policy.SlowCall == 0 && policy.MaxRetryAfter == 0,
		},
		classify: c.classifier,
		methods:  c.methods,
		keyFunc:  c.keyFunc,
		fallback: c.fallback,
	}
	if c.staleBytes > 0 {
		t.stale = newStaleCache(c.staleBytes, c.callerHeaders)
	}
	t.hosts.max = c.maxHosts
	if c.store != nil {
		t.fleet = &fleet{store: c.store}
		t.fleet.unsubscribe = c.store.Subscribe(t.adopt) // adopts the openings in force first
		if t.fleet.unsubscribe == nil {
			t.fleet.unsubscribe = func() {}
		}
	}
	return t, nil
}

// RoundTrip sends req through the base transport unless the circuit of its
// host refuses it; see the package documentation for the rules. Whatever
// happens, the request body is closed and the request is left unchanged.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		return nil, errNilRequest
	}
	b, err := t.breakerFor(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	tk, refused := b.admit(&t.s)
	if refused != nil {
		b.counts.rejected.Add(1)
		return t.refuse(req, refused)
	}
	if tk.probe {
		return t.probe(req, b, tk)
	}
	hadFailures := t.fleet != nil && b.load().failures() > 0
	resp, err := t.send(req)
	var outcome Outcome
	if t.s.plain {
		outcome = t.classifyCall(req, resp, err)
		b.reportPlain(&t.s, tk, outcome)
	} else {
		v := t.judge(req, tk, resp, err)
		outcome = v.outcome
		b.report(&t.s, tk, v)
	}
	if t.fleet != nil && !b.forgotten.Load() {
		t.tellStore(req, b, tk, outcome, hadFailures)
	}
	if t.stale != nil {
		return t.staleIfError(req, resp, err, outcome)
	}
	return resp, err
}

// breakerFor returns the breaker of req's key, or why req cannot be sent.
func (t *Transport) breakerFor(req *http.Request) (*breaker, error) {
	switch {
	case t.base == nil:
		return nil, errNotNew
	case req.URL == nil:
		return nil, errNilURL
	case !t.methods.allows(req.Method):
		return nil, &methodError{method: req.Method}
	}
	var key string
	if t.keyFunc != nil {
		key = t.keyFunc(req)
	} else {
		if host := req.URL.Host; maybeKey(host) {
			if b := t.hosts.peek(host); b != nil {
				t.hosts.touch(b)
				return b, nil // a tracked host, already in normal form
			}
		}
		key = requestKey(req.URL)
	}
	if key == "" {
		return nil, errEmptyHost
	}
	b := t.hosts.obtain(key, &t.s)
	t.hosts.touch(b)
	return b, nil
}

// send passes req to the base transport. A response without a Body or a
// Header (which http.Client tolerates) gets empty ones, so that nothing
// downstream — the classifier, the stale cache, the caller — meets a nil.
func (t *Transport) send(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil && err == nil {
		if resp.Body == nil {
			resp.Body = http.NoBody
		}
		if resp.Header == nil {
			resp.Header = make(http.Header)
		}
	}
	return oneOf(resp, err, errNilResponse)
}

// classifyCall runs the classifier on a call's result. When the request's
// own context was canceled, the error it sees matches [context.Canceled]
// whatever the base returned: net/http returns a context's cause (errgroup's,
// say) rather than context.Canceled, and the caller giving up says nothing
// about the host.
func (t *Transport) classifyCall(req *http.Request, resp *http.Response, err error) Outcome {
	if err != nil && callerCanceled(req) {
		err = canceledError{err}
	}
	return t.classify(resp, err).normal()
}

// callerCanceled reports whether req's own context was canceled (not timed
// out: an expired deadline is the host's slowness).
func callerCanceled(req *http.Request) bool {
	return errors.Is(req.Context().Err(), context.Canceled)
}

// canceledError is a transport error seen by the classifier of a call whose
// caller canceled it: it matches context.Canceled and unwraps to the error.
type canceledError struct{ err error }

func (e canceledError) Error() string        { return e.err.Error() }
func (e canceledError) Unwrap() error        { return e.err }
func (e canceledError) Is(target error) bool { return target == context.Canceled }

// probe sends a half-open probe. If the base transport or the classifier
// panics, the probe's slot is given back before the panic goes on, so the
// breaker never waits for a report that will not come.
func (t *Transport) probe(req *http.Request, b *breaker, tk ticket) (*http.Response, error) {
	if t.fleet != nil {
		release, ok := t.fleetProbe(req, b)
		if !ok { // another member holds the fleet's probes
			b.giveBackProbe()
			b.counts.rejected.Add(1)
			return t.refuse(req, b.refusal.Load())
		}
		defer release()
		if err := req.Context().Err(); err != nil {
			// The caller gave up while the Store decided: a probe sent now
			// would fail on its own deadline and reopen the circuit of a
			// host that may be healthy.
			b.giveBackProbe()
			closeBody(req)
			return nil, context.Cause(req.Context())
		}
		defer t.announceProbe(req, b, tk)
	}
	reported := false
	defer func() {
		if !reported {
			b.report(&t.s, tk, verdict{outcome: Ignore})
		}
	}()
	resp, err := t.send(req)
	v := t.judge(req, tk, resp, err)
	reported = true
	b.report(&t.s, tk, v)
	if t.stale != nil {
		return t.staleIfError(req, resp, err, v.outcome)
	}
	return resp, err
}

// refuse answers a request the breaker will not send.
func (t *Transport) refuse(req *http.Request, refused *OpenError) (*http.Response, error) {
	closeBody(req)
	if t.stale != nil {
		if stale := t.stale.serve(req, t.s.now()); stale != nil {
			return stale, nil
		}
	}
	if t.fallback == nil {
		return nil, refused
	}
	resp, err := t.fallback(req, refused)
	return oneOf(resp, err, refused)
}

// State returns the state of host's circuit. host may be a host, a host:port
// or an absolute URL, normalised like a request's host (a bare host:port
// with port 80 or 443 also finds the breaker of the host without it). A host
// never seen is closed; looking does not track it.
func (t *Transport) State(host string) State {
	if b := t.find(host); b != nil {
		return b.current(&t.s)
	}
	return StateClosed
}

// IsOpen reports whether host's circuit is open: requests are refused.
func (t *Transport) IsOpen(host string) bool { return t.State(host) == StateOpen }

// IsHalfOpen reports whether host's circuit is half-open: probes may pass.
func (t *Transport) IsHalfOpen(host string) bool { return t.State(host) == StateHalfOpen }

// IsClosed reports whether host's circuit is closed: requests pass.
func (t *Transport) IsClosed(host string) bool { return t.State(host) == StateClosed }

// ClearState forces host's circuit closed and resets its counts; results of
// calls admitted before are then dropped. Listeners hear of the transition
// if the circuit was not closed. With a Store it closes the fleet's circuit
// too, whether or not this Transport tracks the host.
func (t *Transport) ClearState(host string) {
	if b := t.find(host); b != nil {
		t.hosts.clear(b, &t.s, false)
	}
	if t.fleet != nil {
		if key := t.controlKey(host); key != "" {
			ctx, cancel := storeContext(nil)
			defer cancel()
			_ = t.fleet.store.Reset(ctx, key)
		}
	}
}

// find returns the breaker a host argument names, or nil. An absolute URL
// names exactly the circuit a request to it would use; a bare host:80 or
// host:443 names the circuit of the host without the port when only that
// one is tracked, since it more likely means https://host or http://host.
// With a key func, keys are taken as they are.
func (t *Transport) find(host string) *breaker {
	key := t.hostKey(host)
	if b := t.hosts.lookup(key); b != nil || t.keyFunc != nil || strings.Contains(host, "://") {
		return b
	}
	if alt := withoutDefaultPort(key); alt != "" {
		return t.hosts.lookup(alt)
	}
	return nil
}

// controlKey is the key Isolate and ClearState act on: the tracked circuit
// the argument names, or else the key it names — for a bare host:443 or
// host:80, the host without the port, which it most likely means.
func (t *Transport) controlKey(host string) string {
	if b := t.find(host); b != nil {
		return b.host
	}
	key := t.hostKey(host)
	if alt := withoutDefaultPort(key); alt != "" && t.keyFunc == nil && !strings.Contains(host, "://") {
		return alt
	}
	return key
}

// hostKey turns a host argument into the key it names.
func (t *Transport) hostKey(host string) string {
	if t.keyFunc != nil {
		return host
	}
	return normalizeHost(host)
}

// CloseIdleConnections closes the base transport's idle connections, if it
// has that method; [http.Client.CloseIdleConnections] reaches it this way.
func (t *Transport) CloseIdleConnections() {
	type closeIdler interface{ CloseIdleConnections() }
	if c, ok := t.base.(closeIdler); ok {
		c.CloseIdleConnections()
	}
}
