package bench

import (
	"context"
	"errors"
	"testing"

	failsafego "github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/httpbreaker/httpbreaker"
)

// Calls that are not HTTP: one backend (a database, a gRPC service) under
// one breaker, each contender as its users write a guarded call.

// work is the guarded call: it succeeds at once, so what is measured is
// the breaker's cost around a closure call.
var work = func(context.Context) error { return nil }

// callContender runs one call of work under its breaker.
type callContender struct {
	name string
	make func() func(ctx context.Context) error
}

var callContenders = []callContender{
	{"bare", func() func(context.Context) error { return work }},
	{"httpbreaker-do", func() func(context.Context) error {
		rt := callTransport()
		return func(ctx context.Context) error { return rt.Do(ctx, "orders-db", work) }
	}},
	{"httpbreaker-allow", func() func(context.Context) error {
		rt := callTransport()
		return func(ctx context.Context) error {
			done, err := rt.Allow(ctx, "orders-db")
			if err != nil {
				return err
			}
			err = work(ctx)
			done(httpbreaker.DefaultErrorClassifier(err))
			return err
		}
	}},
	{"gobreaker-execute", func() func(context.Context) error {
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        "orders-db",
			Timeout:     openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		})
		return func(ctx context.Context) error {
			_, err := cb.Execute(func() (struct{}, error) { return struct{}{}, work(ctx) })
			return err
		}
	}},
	{"failsafe-get", func() func(context.Context) error {
		cb := circuitbreaker.NewBuilder[struct{}]().WithFailureThreshold(threshold).WithDelay(openFor).Build()
		exec := failsafego.With[struct{}](cb)
		return func(ctx context.Context) error {
			_, err := exec.Get(func() (struct{}, error) { return struct{}{}, work(ctx) })
			return err
		}
	}},
}

func callTransport() *httpbreaker.Transport {
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: threshold, ResetTimeout: openFor}))
	if err != nil {
		panic(err)
	}
	return rt
}

func BenchmarkCallSerial(b *testing.B) {
	ctx := context.Background()
	for _, c := range callContenders {
		b.Run(c.name, func(b *testing.B) {
			call := c.make()
			b.ReportAllocs()
			for b.Loop() {
				if err := call(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCallParallel is every core calling the one backend: a pool's
// workers sharing one breaker.
func BenchmarkCallParallel(b *testing.B) {
	ctx := context.Background()
	for _, c := range callContenders {
		b.Run(c.name, func(b *testing.B) {
			call := c.make()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// The contenders agree on what they measure: each opens after threshold
// failures of the call.
func TestCallContendersOpenAfterTheThreshold(t *testing.T) {
	errDown := errors.New("down")
	for _, c := range callContenders[1:] {
		saved := work
		work = func(context.Context) error { return errDown }
		call := c.make()
		for i := range threshold {
			if err := call(context.Background()); !errors.Is(err, errDown) {
				t.Fatalf("%s: call %d: %v", c.name, i, err)
			}
		}
		if err := call(context.Background()); errors.Is(err, errDown) || err == nil {
			t.Errorf("%s: not open after %d failures: %v", c.name, threshold, err)
		}
		work = saved
	}
}
