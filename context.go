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

// controls are what a request's context asks of the Transport.
type controls struct {
	key    string
	bypass bool
}

type controlsKey struct{}

// controlsSeen is set, once and for good, when a program first makes a
// context with WithKey or WithoutBreaker: until then the request path never
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
