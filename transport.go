package httpbreaker

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
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
	owned    bool // base is the pool New made: Close closes its idle connections
	s        shared
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
// shared with the rest of the program), which the Transport owns: [Transport.Close]
// closes its idle connections. A base you pass stays yours to close. New
// fails on a nil option, an option given an unusable value, a [Policy] with
// a field out of range, a nil pointer or func as base (a nil
// *http.Transport would panic at the first request), and a base that is a
// *Transport already (every call would count twice: give New that
// Transport's base, or use it as it is); the error names what is wrong.
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
	if err := checkBase(base); err != nil {
		return nil, err
	}
	owned := base == nil
	if owned {
		base = cleanhttp.DefaultPooledTransport()
	}
	policy := c.policy.withDefaults()
	sheds := policy.Throttle > 0 || policy.MaxConcurrent > 0
	t := &Transport{
		base:  base,
		owned: owned,
		s: shared{
			policy:    policy,
			now:       c.now,
			epoch:     c.now(),
			listeners: c.listeners,
			timed:     policy.Window > 0 || policy.SlowCall > 0 || policy.Throttle > 0 || policy.RetryBudget > 0,
			window:    policy.ruleWindow(),
			counts:    policy.Window > 0 || policy.RetryBudget > 0,
			rates:     policy.Window > 0,
			plain:     policy.Window == 0 && policy.SlowCall == 0 && policy.MaxRetryAfter == 0 && !sheds && policy.RetryBudget == 0,
			throttles: policy.Throttle > 0,
			caps:      policy.MaxConcurrent > 0,
			adapts:    policy.AdaptiveConcurrency,
			sheds:     sheds,
			budgets:   policy.RetryBudget > 0,
			random:    rand.Float64,
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
	t.hosts.slots = policy.MaxConcurrent > 0
	if c.store != nil {
		t.fleet = &fleet{store: c.store}
		t.fleet.unsubscribe = c.store.Subscribe(t.adopt) // adopts the openings in force first
		if t.fleet.unsubscribe == nil {
			t.fleet.unsubscribe = func() {}
		}
	}
	return t, nil
}

// checkBase refuses a base that would fail later: a nil pointer or func
// (a typed nil in the interface, which the nil check misses), or a
// Transport, which would put a breaker in front of a breaker.
func checkBase(base http.RoundTripper) error {
	if base == nil {
		return nil
	}
	if _, ok := base.(*Transport); ok {
		return errors.New("httpbreaker: the base is a *httpbreaker.Transport already: every call would count twice; " +
			"give New that Transport's base, or use it as it is")
	}
	if v := reflect.ValueOf(base); (v.Kind() == reflect.Pointer || v.Kind() == reflect.Func) && v.IsNil() {
		return fmt.Errorf("httpbreaker: the base is a nil %T: pass nil itself for the default pooled transport", base)
	}
	return nil
}

// RoundTrip sends req through the base transport unless the circuit of its
// host, or a rule of its policy, refuses it; see the package documentation
// for the rules. Whatever happens, the request body is closed and the
// request is left unchanged.
//
// It follows a fixed sequence: the key's host; its circuit; each rule the
// policy turns on (the throttle, the concurrency cap and its adaptive
// limit); the send; the verdict, counted by the circuit and then by each
// rule; the fleet; the stale cache. The retry budget is not on this path:
// [Transport.AllowRetry] asks it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		return nil, errNilRequest
	}
	b, criticality, err := t.breakerFor(req) // the key's host
	switch {
	case err != nil:
		closeBody(req)
		return nil, err
	case b == nil: // WithoutBreaker, or no room under WithMaxHosts
		return t.send(req, nil)
	}
	tk, open := b.admit(&t.s) // the circuit
	if open != nil {
		return t.refuse(req, b, open)
	}
	if t.s.throttles && !tk.probe && b.more.throttle.refuses(&t.s, criticality) { // the throttle
		return t.shed(req, b, tk, &b.more.throttle.refusal)
	}
	if t.s.caps { // the concurrency cap
		limit := t.s.policy.MaxConcurrent
		if t.s.adapts { // its limit, adaptive, which times a share of the calls
			limit, tk = b.more.limit.admits(&t.s, criticality, tk)
		}
		if !b.more.slots.acquire(limit) {
			return t.shed(req, b, tk, &b.more.slots.refusal)
		}
		if b.forgotten.Load() { // evicted as the call took its slot: again, on the key's new host
			t.giveBack(b, tk)
			return t.RoundTrip(req)
		}
	}
	if tk.probe {
		return t.probe(req, b, tk)
	}
	hadFailures := t.fleet != nil && b.load().failures() > 0
	resp, err := t.send(req, b)
	var outcome Outcome
	if t.s.plain { // the verdict, counted by the circuit (no clock read: no rule needs it)
		outcome = t.classifyCall(req, resp, err)
		b.reportPlain(&t.s, tk, outcome)
	} else {
		v := t.judge(req, tk, resp, err)
		outcome = v.outcome
		b.report(&t.s, tk, v)
		if t.s.sheds { // then by the rules beyond the circuit
			t.account(b, v)
		}
		if t.s.adapts { // and by the adaptive limit
			t.learn(b, tk, v, req, resp, err)
		}
	}
	if t.fleet != nil && (outcome != Success || hadFailures) && !b.forgotten.Load() { // a healthy call tells the fleet nothing
		t.tellStore(req, b, tk, outcome, hadFailures)
	}
	if t.stale != nil {
		return t.staleIfError(req, resp, err, outcome)
	}
	return resp, err
}

// account counts a closed-path call's verdict for each rule beyond the
// circuit, in RoundTrip's order: the throttle, then the shedding news.
func (t *Transport) account(b *breaker, v verdict) {
	if t.s.throttles {
		b.more.throttle.account(&t.s, v)
	}
	b.more.shedding.afterCall(&t.s, b, v)
}

// learn hands the adaptive limit (adaptive.go) a call's answer (status 0
// for none), with the calls in flight as it came: those holding the cap's
// slots now, and this one, whose slot a body-less answer gave back already
// (else a limit fully used would never look so, and never grow).
func (t *Transport) learn(b *breaker, tk ticket, v verdict, req *http.Request, resp *http.Response, err error) {
	status, inFlight := answer(resp, err), b.more.slots.inFlight.Load()
	if status != 0 && cannotHaveBody(req, resp) {
		inFlight++
	}
	b.more.limit.learn(&t.s, tk.start, v.at, status, inFlight)
}

// answer is the status code of a call's answer, or 0 when none came (send
// returns a response exactly when it returns no error).
func answer(resp *http.Response, err error) int {
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// breakerFor returns the breaker of req's key and the request's
// criticality, or why req cannot be sent, or no breaker for a request whose
// context says WithoutBreaker or whose new key finds no room under
// WithMaxHosts. It reads the request's controls once (context.go).
func (t *Transport) breakerFor(req *http.Request) (*breaker, Criticality, error) {
	switch {
	case t.base == nil:
		return nil, 0, errNotNew
	case req.URL == nil:
		return nil, 0, errNilURL
	case !t.methods.allows(req.Method):
		return nil, 0, &methodError{method: req.Method}
	}
	var key string
	var criticality Criticality
	if controlsSeen.Load() {
		c := controlsOf(req.Context())
		if c.bypass {
			return nil, 0, nil
		}
		key, criticality = c.key, c.criticality
	}
	if key == "" && t.keyFunc == nil {
		if host := req.URL.Host; maybeKey(host) {
			if b := t.hosts.peek(host); b != nil {
				t.hosts.touch(b)
				return b, criticality, nil // a tracked host, already in normal form
			}
		}
	}
	if key = t.keyFor(req, key); key == "" {
		return nil, 0, errEmptyHost
	}
	return t.hosts.obtain(key, &t.s), criticality, nil
}

// keyFor is the key of req, whose context gave it key (WithKey; "" for
// none): that, or WithKeyFunc's, or its host in normal form.
func (t *Transport) keyFor(req *http.Request, key string) string {
	switch {
	case key != "":
		return key
	case t.keyFunc != nil:
		return t.keyFunc(req)
	}
	return requestKey(req.URL)
}

// send passes req, admitted by b (nil for none), to the base transport. A
// response without a Body or a Header (which http.Client tolerates) gets
// empty ones, so that nothing downstream — the classifier, the stale cache,
// the caller — meets a nil. Under MaxConcurrent the call holds a slot of
// b's, which the cap hands to the response body.
func (t *Transport) send(req *http.Request, b *breaker) (*http.Response, error) {
	if b != nil && t.s.caps {
		return b.more.slots.send(t, req)
	}
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

// probe sends a half-open probe, after taking one of the fleet's leases
// if there is a fleet; the breaker runs the call and hears its verdict.
func (t *Transport) probe(req *http.Request, b *breaker, tk ticket) (*http.Response, error) {
	if t.fleet != nil {
		done, ok, err := t.fleetProbe(req, b, tk)
		switch {
		case !ok: // another member holds the fleet's probes
			t.giveBack(b, tk)
			return t.refuse(req, b, b.refusal.Load())
		case err != nil: // the caller gave up while the Store decided
			t.giveBack(b, tk)
			closeBody(req)
			return nil, err
		}
		defer func() { done(b.load()) }() // tells the fleet what the probe did
	}
	var resp *http.Response
	var err error
	v := b.probe(&t.s, tk, func() verdict {
		resp, err = t.send(req, b)
		return t.judge(req, tk, resp, err)
	})
	if t.s.adapts { // a probe's answer teaches the adaptive limit too
		t.learn(b, tk, v, req, resp, err)
	}
	if t.stale != nil {
		return t.staleIfError(req, resp, err, v.outcome)
	}
	return resp, err
}

// giveBack frees what an admitted call that will not be sent holds: its
// concurrency slot, under MaxConcurrent, and its probe slot if a probe.
func (t *Transport) giveBack(b *breaker, tk ticket) {
	if t.s.caps {
		b.more.slots.release()
	}
	if tk.probe {
		b.giveBackProbe()
	}
}

// shed answers a call an overload rule refused: counted as shed (and, by
// the throttle, as a request the host did not accept), its probe slot
// given back, then refused like any refusal.
func (t *Transport) shed(req *http.Request, b *breaker, tk ticket, refusal *OverloadError) (*http.Response, error) {
	now := t.s.clock()
	b.more.shedding.refused(&t.s, b, now, tk.probe)
	if t.s.throttles && !tk.probe {
		b.more.throttle.refused(&t.s, now)
	}
	if tk.probe {
		b.giveBackProbe()
	}
	return t.refuse(req, b, refusal)
}

// refuse answers a request b's circuit will not send, and counts it:
// refused is an *OpenError or an *OverloadError.
func (t *Transport) refuse(req *http.Request, b *breaker, refused error) (*http.Response, error) {
	b.counts.rejected.Add(1)
	closeBody(req)
	if t.stale != nil {
		if stale := t.stale.serve(req, t.s.now(), false); stale != nil {
			return stale, nil
		}
	}
	if t.fallback == nil {
		return nil, refused
	}
	resp, err := t.fallback(req, refused)
	return oneOf(resp, err, refused)
}

// NewClient returns a copy of base — its Timeout, Jar and CheckRedirect
// kept — whose transport is a new Transport over base's (a nil base, or a
// nil base.Transport, means httpbreaker's default, see [New]), and that
// Transport, for inspection and Close. base itself is never changed. A
// base whose Transport is a *Transport already is an error, as for New.
func NewClient(base *http.Client, opts ...Option) (*http.Client, *Transport, error) {
	var client http.Client
	if base != nil {
		client = *base
	}
	rt, err := New(client.Transport, opts...)
	if err != nil {
		return nil, nil, err
	}
	client.Transport = rt
	return &client, rt, nil
}

// CloseIdleConnections closes the base transport's idle connections, if it
// has that method; [http.Client.CloseIdleConnections] reaches it this way.
func (t *Transport) CloseIdleConnections() {
	type closeIdler interface{ CloseIdleConnections() }
	if c, ok := t.base.(closeIdler); ok {
		c.CloseIdleConnections()
	}
}

// maxDrain bounds how much of a swallowed response body is read so its
// connection can be reused; past it the connection is simply closed.
const maxDrain = 4 << 10

// discard drains (up to maxDrain bytes) and closes the body of a response
// the caller will never see.
func discard(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
}

// closeBody closes the request body, as a RoundTripper must even when it
// sends nothing.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// oneOf makes (resp, err) obey the RoundTripper contract: exactly one of
// them is non-nil. fallbackErr stands in when both are nil.
func oneOf(resp *http.Response, err, fallbackErr error) (*http.Response, error) {
	switch {
	case err != nil && resp != nil:
		discard(resp)
		return nil, err
	case err == nil && resp == nil:
		return nil, fallbackErr
	}
	return resp, err
}
