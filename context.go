package httpbreaker

import (
	"context"
	"sync/atomic"
)

// WithKey returns a context that puts a request made with it on the
// circuit named key — per tenant, per route, per API key, chosen where the
// request is made — instead of the one WithKeyFunc or its host would give.
// Inspect and steer that circuit with the same key (State(key),
// Isolate(key), …): the inspection methods read a host argument in lower
// case and take one with "://" for a URL, so give keys in lower case
// without "://" (with WithKeyFunc, keys are read as they are). An empty key
// changes nothing.
func WithKey(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	c := controlsOf(ctx)
	c.key = key
	return withControls(ctx, c)
}

// WithoutBreaker returns a context whose requests bypass their circuit:
// never refused, never counted, never served from or kept in the stale
// cache — for health checks and operators' tools that must see the host as
// it is. The risk is the breaker's whole point: such requests reach a host
// the breaker keeps others from, so use it for a trickle, not for traffic.
// The method table still applies.
func WithoutBreaker(ctx context.Context) context.Context {
	c := controlsOf(ctx)
	c.bypass = true
	return withControls(ctx, c)
}

// Criticality says how much a request matters when its host is overloaded,
// as in the Google SRE book: under adaptive throttling ([Policy.Throttle])
// background work yields to user-facing work.
//
// The throttle refuses a share p of the calls to a host (see
// [Policy.Throttle]); criticality decides whose calls make up that share,
// lowest first. Over the last Window, with n_S, n_C and n_P the calls
// attempted at each criticality while the throttle refused (this one
// included) and N their sum, p·N refusals are handed out in the order Sheddable,
// Critical, CriticalPlus, each level taking as many as it has calls:
//
//	Sheddable:    q_S = min(1, p·N / n_S)
//	Critical:     q_C = min(1, (p·N − q_S·n_S) / n_C)
//	CriticalPlus: q_P = min(1, (p·N − q_S·n_S − q_C·n_C) / n_P)
//
// and a call at level L is refused with probability q_L. So a critical call
// is refused only while every sheddable one is, and the host still sees the
// same share of calls refused as without criticality: the throttle's
// balance (sending about Throttle × accepts) is kept whatever the mix. A
// level whose share of calls exceeds what is refused may be refused every
// time. The concurrency cap treats every criticality alike.
type Criticality int8

const (
	// Sheddable requests are refused first under throttling: prefetches,
	// batch jobs, retries of background work.
	Sheddable Criticality = -1
	// Critical is the default.
	Critical Criticality = 0
	// CriticalPlus requests are refused last.
	CriticalPlus Criticality = 1
)

// String returns "sheddable", "critical" or "critical-plus".
func (c Criticality) String() string {
	switch c {
	case Sheddable:
		return "sheddable"
	case CriticalPlus:
		return "critical-plus"
	}
	return "critical"
}

// WithCriticality returns a context whose requests have criticality c. A
// value other than the three constants means Critical.
func WithCriticality(ctx context.Context, c Criticality) context.Context {
	if c != Sheddable && c != CriticalPlus {
		c = Critical
	}
	cs := controlsOf(ctx)
	if cs.criticality == c {
		return ctx
	}
	cs.criticality = c
	return withControls(ctx, cs)
}

// CriticalityFrom returns the criticality of requests made with ctx:
// Critical unless WithCriticality said otherwise.
func CriticalityFrom(ctx context.Context) Criticality {
	if !controlsSeen.Load() {
		return Critical
	}
	return controlsOf(ctx).criticality
}

// asks are what the rules need of a request's controls, read once with its
// key (hostOf) and carried along its path.
type asks struct {
	criticality Criticality
	noHedge     bool // WithoutHedging
}

// controls are what a request's context asks of the Transport.
type controls struct {
	key         string
	bypass      bool
	noHedge     bool // WithoutHedging (hedge.go)
	criticality Criticality
}

type controlsKey struct{}

// controlsSeen is set, once and for good, when a program first makes a
// context with WithKey, WithoutBreaker or WithCriticality: until then the request path never
// looks at a request's context, so programs that do not use them pay one
// atomic load for them.
var controlsSeen atomic.Bool

func withControls(ctx context.Context, c controls) context.Context {
	controlsSeen.Store(true)
	return context.WithValue(ctx, controlsKey{}, c)
}

func controlsOf(ctx context.Context) controls {
	c, _ := ctx.Value(controlsKey{}).(controls)
	return c
}
