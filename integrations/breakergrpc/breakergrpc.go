// Package breakergrpc puts gRPC calls under httpbreaker's circuits: client
// interceptors that ask an [httpbreaker.Transport] before each call, so a
// service's HTTP and gRPC upstreams share one registry, one policy, one
// status page, one set of metrics and, with a Store, one fleet.
//
//	rt, _ := httpbreaker.New(nil)
//	conn, _ := grpc.NewClient("dns:///orders:443",
//		grpc.WithTransportCredentials(creds),
//		grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt)),
//		grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(rt)))
//
// Each target has a circuit of its own, keyed as an HTTP host is (see
// [TargetKey]): a call to an open circuit is refused at once, never dialed
// or sent, with an error whose status code is Unavailable and which
// errors.Is [httpbreaker.ErrCircuitOpen] (or [httpbreaker.ErrOverloaded],
// for the throttle and the concurrency cap). [DefaultCodeClassifier]
// decides which status codes count against the target.
//
// A unary call is judged when it returns. A stream holds its circuit's
// admission (and a concurrency slot, under Policy.MaxConcurrent) from its
// start until it ends: its first error, io.EOF from RecvMsg, the single
// reply of a stream that is not server-streaming, or its context ending —
// so cancel a stream's context, or read it to the end, as gRPC itself asks.
// A stream dropped without either is ended as Ignore when the garbage
// collector finds it, its slot given back late.
package breakergrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/httpbreaker/httpbreaker"
)

// An Option configures an interceptor.
type Option func(*config)

type config struct {
	key      func(ctx context.Context, target, method string) string
	classify func(codes.Code) httpbreaker.Outcome
}

// WithKeyFunc sets how a call finds its circuit: key gets the call's
// context, the ClientConn's target as it was dialed and the full method
// ("/package.Service/Method"). The default is [TargetKey] of the target:
// one circuit per upstream. A key such as TargetKey(target)+method gives a
// circuit per method; an empty key sends the call unguarded. A nil key
// keeps the default.
func WithKeyFunc(key func(ctx context.Context, target, method string) string) Option {
	return func(c *config) {
		if key != nil {
			c.key = key
		}
	}
}

// WithCodeClassifier sets how a call's status code counts against its
// circuit; the default is [DefaultCodeClassifier]. It sees codes.OK for a
// call that succeeded, and codes.Canceled for one whose context the caller
// canceled, whatever the call returned. A nil classify keeps the default.
func WithCodeClassifier(classify func(codes.Code) httpbreaker.Outcome) Option {
	return func(c *config) {
		if classify != nil {
			c.classify = classify
		}
	}
}

func newConfig(opts []Option) *config {
	c := &config{
		key:      func(_ context.Context, target, _ string) string { return TargetKey(target) },
		classify: DefaultCodeClassifier,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	return c
}

// errNilTransport is what every call through an interceptor made with a
// nil Transport returns.
var errNilTransport = status.Error(codes.FailedPrecondition, "breakergrpc: the interceptor was made with a nil *httpbreaker.Transport")

// UnaryClientInterceptor guards each unary call with the circuit of its
// key (by default its target's): refused, the call is never sent and the
// refusal comes back (status Unavailable, errors.Is ErrCircuitOpen or
// ErrOverloaded); sent, its status code is judged by the code classifier
// and its error returned unchanged.
func UnaryClientInterceptor(rt *httpbreaker.Transport, opts ...Option) grpc.UnaryClientInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		if rt == nil {
			return errNilTransport
		}
		key := c.key(ctx, targetOf(cc), method)
		if key == "" {
			return invoker(ctx, method, req, reply, cc, callOpts...)
		}
		done, err := rt.Allow(ctx, key)
		if err != nil {
			return refused(err)
		}
		ended := false
		defer func() {
			if !ended { // the invoker panicked: the call tells nothing
				done(httpbreaker.Ignore)
			}
		}()
		err = invoker(ctx, method, req, reply, cc, callOpts...)
		ended = true
		done(c.outcome(ctx, err))
		return err
	}
}

// StreamClientInterceptor guards each stream with the circuit of its key
// (by default its target's), as UnaryClientInterceptor guards a call: a
// refused stream is never opened. An admitted stream is judged once, when
// it ends (see the package doc), and holds its admission until then.
func StreamClientInterceptor(rt *httpbreaker.Transport, opts ...Option) grpc.StreamClientInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		if rt == nil {
			return nil, errNilTransport
		}
		key := c.key(ctx, targetOf(cc), method)
		if key == "" {
			return streamer(ctx, desc, cc, method, callOpts...)
		}
		done, err := rt.Allow(ctx, key)
		if err != nil {
			return nil, refused(err)
		}
		ended := false
		defer func() {
			if !ended {
				done(httpbreaker.Ignore)
			}
		}()
		cs, err := streamer(ctx, desc, cc, method, callOpts...)
		ended = true
		if err != nil {
			done(c.outcome(ctx, err))
			return nil, err
		}
		return newStream(ctx, cs, desc, c, done), nil
	}
}

// outcome judges a call's error: nil is codes.OK, a canceled ctx is
// codes.Canceled, else the error's status code (Unknown for an error that
// has none).
func (c *config) outcome(ctx context.Context, err error) httpbreaker.Outcome {
	code := codes.OK
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.Canceled):
		code = codes.Canceled
	default:
		code = status.Code(err)
	}
	return c.classify(code)
}

func targetOf(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	return cc.Target()
}
