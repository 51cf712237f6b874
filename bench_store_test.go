package httpbreaker_test

import (
	"net/http"
	"testing"

	"github.com/httpbreaker/httpbreaker"
)

// BenchmarkRoundTripClosedWithStore shows that a Store costs the healthy
// closed path nothing: the same Transport with and without one, side by
// side.
func BenchmarkRoundTripClosedWithStore(b *testing.B) {
	base := newOKBase()
	store := newMemStore()
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
