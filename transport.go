package httpbreaker

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"

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
	strict   bool // classify is DefaultClassifier, by default: classifyCall inlines it
	// classifyErr judges Do's calls (WithErrorClassifier); nil for
	// DefaultErrorClassifier, called directly.
	classifyErr func(error) Outcome
	methods     methodTable
	keyFunc     func(*http.Request) string // nil: the normalised host
	fallback    Fallback                   // nil: refusals return *OpenError
	stale       *staleCache                // nil: no stale-if-error
	fleet       *fleet                     // nil: circuits live in this process only
	hosts       registry
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
	c := config{methods: methods, maxHosts: DefaultMaxHosts} // a nil now is time.Now
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
	strict := c.classifier == nil
	if strict {
		c.classifier = DefaultClassifier
	}
	t := &Transport{
		base:        base,
		owned:       owned,
		classify:    c.classifier,
		strict:      strict,
		classifyErr: c.errorClassifier,
		methods:     c.methods,
		keyFunc:     c.keyFunc,
		fallback:    c.fallback,
	}
	t.s.init(policy, c.now, c.listeners)
	if c.staleBytes > 0 {
		t.stale = newStaleCache(c.staleBytes, c.callerHeaders)
	}
	t.hosts.max = c.maxHosts
	t.hosts.slots = t.s.caps
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
// It follows a fixed sequence: the key's host; its circuit; the rules the
// policy turns on (the throttle, the concurrency cap and its adaptive
// limit); the send; the verdict, counted by the circuit and then by the
// rules; the fleet; the stale cache. The retry budget is not on this path:
// [Transport.AllowRetry] asks it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		return nil, errNilRequest
	}
	b, asked, err := t.hostOf(req, true) // the key's host
	switch {
	case err != nil:
		closeBody(req)
		return nil, err
	case b == nil: // WithoutBreaker, or no room under WithMaxHosts
		return fromBase(t.base.RoundTrip(req))
	}
	tk, open := b.admit(&t.s) // the circuit
	if open != nil {
		return t.refuse(req, b, open)
	}
	if t.s.admits { // the rules beyond it (rules.go)
		var shed *OverloadError
		switch tk, shed = b.more.rules.admit(&t.s, b, tk, asked.criticality); {
		case shed == errEvicted: // as the call took its slot: again, on the key's new host
			t.giveBack(b, tk)
			return t.RoundTrip(req)
		case shed != nil:
			return t.shed(req, b, tk, shed)
		}
	}
	if tk.probe {
		return t.probe(req, b, tk)
	}
	hadFailures := t.fleet != nil && b.load().failures() > 0
	resp, err := t.send(req, b, !asked.noHedge)
	var outcome Outcome
	if t.s.plain { // the verdict, counted by the circuit (no clock read: no rule needs it)
		if outcome = t.classifyCall(req, resp, err); !b.countedSuccess(tk, outcome) {
			b.reportPlain(&t.s, tk, outcome)
		}
	} else {
		v := t.judge(req, tk, resp, err)
		outcome = v.outcome
		b.report(&t.s, tk, v)
		if t.s.accounts { // then by the rules
			b.more.rules.account(&t.s, b, tk, v, req, resp)
		}
	}
	if t.fleet != nil && (outcome != Success || hadFailures) && !b.forgotten.Load() { // a healthy call tells the fleet nothing
		t.tellStore(req.Context(), b, tk, outcome, hadFailures)
	}
	if t.stale != nil {
		return t.staleIfError(req, resp, err, outcome)
	}
	return resp, err
}

// send passes req, admitted by b, to the base transport: under HedgeAfter,
// if it may be hedged, as a race with its hedges; under MaxConcurrent
// through the cap, whose slot the call holds and the response body then
// (rules.go).
func (t *Transport) send(req *http.Request, b *breaker, hedge bool) (*http.Response, error) {
	switch {
	case t.s.races && hedge:
		return b.more.rules.race(&t.s, b, req, t.base, t.classify)
	case t.s.sends:
		return b.more.rules.send(req, t.base)
	}
	resp, err := t.base.RoundTrip(req)
	if whole(resp, err) { // fromBase's common case, without its call
		return resp, nil
	}
	return mended(resp, err)
}

// fromBase is what the base returned, made to obey the RoundTripper
// contract: exactly one of the response and the error. A response without
// a Body or a Header (which http.Client tolerates) gets empty ones, so
// that nothing downstream — the classifier, the stale cache, the caller —
// meets a nil.
func fromBase(resp *http.Response, err error) (*http.Response, error) {
	if whole(resp, err) {
		return resp, nil
	}
	return mended(resp, err)
}

// whole reports whether the base's answer obeys the contract as it is: a
// response with a Body and a Header, and no error.
func whole(resp *http.Response, err error) bool {
	return err == nil && resp != nil && resp.Body != nil && resp.Header != nil
}

// mended is fromBase's answer for what whole finds wanting.
func mended(resp *http.Response, err error) (*http.Response, error) {
	if resp == nil || err != nil {
		return oneOf(resp, err, errNilResponse)
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	return resp, nil
}

// probe sends a half-open probe, after taking one of the fleet's leases
// if there is a fleet; the breaker runs the call and hears its verdict,
// then the rules do.
func (t *Transport) probe(req *http.Request, b *breaker, tk ticket) (*http.Response, error) {
	if t.fleet != nil {
		done, ok, err := t.fleetProbe(req.Context(), b, tk)
		switch {
		case !ok: // another member holds the fleet's probes
			t.giveBack(b, tk)
			return t.refuse(req, b, b.refusal())
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
		resp, err = t.send(req, b, false) // a probe is never hedged
		return t.judge(req, tk, resp, err)
	})
	if t.s.accounts {
		b.more.rules.account(&t.s, b, tk, v, req, resp)
	}
	if t.stale != nil {
		return t.staleIfError(req, resp, err, v.outcome)
	}
	return resp, err
}

// giveBack frees what an admitted call that will not be sent holds: what
// the rules gave it, and its probe slot if a probe.
func (t *Transport) giveBack(b *breaker, tk ticket) {
	if t.s.admits {
		b.more.rules.release(&t.s)
	}
	if tk.probe {
		b.giveBackProbe()
	}
}

// shed answers a call a rule refused (and counted): its probe slot given
// back, then refused like any refusal.
func (t *Transport) shed(req *http.Request, b *breaker, tk ticket, refusal *OverloadError) (*http.Response, error) {
	if tk.probe {
		b.giveBackProbe()
	}
	return t.refuse(req, b, refusal)
}

// refuse answers a request b's circuit will not send, and counts it:
// refused is an *OpenError or an *OverloadError.
func (t *Transport) refuse(req *http.Request, b *breaker, refused error) (*http.Response, error) {
	b.rejected()
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
