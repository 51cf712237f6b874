package httpbreaker_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/httpbreaker/httpbreaker"
)

// countingStore counts the calls a Transport makes to its Store.
type countingStore struct{ calls atomic.Int64 }

func (s *countingStore) Failure(context.Context, string) (int, httpbreaker.FleetEvent, error) {
	s.calls.Add(1)
	return 0, httpbreaker.FleetEvent{}, nil
}
func (s *countingStore) Success(context.Context, string) error { s.calls.Add(1); return nil }
func (s *countingStore) Open(context.Context, string, time.Time) error {
	s.calls.Add(1)
	return nil
}
func (s *countingStore) Reset(context.Context, string) error { s.calls.Add(1); return nil }
func (s *countingStore) AcquireProbe(context.Context, string, int) (string, bool, error) {
	s.calls.Add(1)
	return "", true, nil
}
func (s *countingStore) ReleaseProbe(context.Context, string, string) error {
	s.calls.Add(1)
	return nil
}
func (s *countingStore) Subscribe(func(httpbreaker.FleetEvent)) func() { return func() {} }

// BenchmarkRoundTripClosedWithStore shows that a Store costs the healthy
// closed path nothing: the same Transport with and without one, side by
// side.
func BenchmarkRoundTripClosedWithStore(b *testing.B) {
	base := newOKBase()
	store := &countingStore{}
	without, err := httpbreaker.New(base)
	if err != nil {
		b.Fatal(err)
	}
	with, err := httpbreaker.New(base, httpbreaker.WithStore(store))
	if err != nil {
		b.Fatal(err)
	}
	reqs := requests(b, 1)
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"without-store", without}, {"with-store", with}} {
		b.Run(c.name, func(b *testing.B) { benchSerial(b, c.rt, reqs) })
	}
	if store.calls.Load() != 0 {
		b.Fatalf("the healthy path called the store %d times", store.calls.Load())
	}
}
