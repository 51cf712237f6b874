package httpbreaker_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/httpbreaker/httpbreaker"
)

// Each benchmark runs three contenders side by side, so their ratios come
// from one run on one machine:
//   - bare: the fake base transport alone, the baseline;
//   - floor: a sync.Map load plus an atomic add per call, then the base —
//     the least any per-host breaker can cost;
//   - httpbreaker: the Transport over the same base.
// Overhead = contender − bare. `make bench` runs them with -count.

// okBase answers every request with one shared, bodiless 200.
type okBase struct{ resp *http.Response }

func newOKBase() *okBase {
	return &okBase{resp: &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}}
}

func (b *okBase) RoundTrip(*http.Request) (*http.Response, error) { return b.resp, nil }

// floor is the cheapest imaginable per-host bookkeeping.
type floor struct {
	base  http.RoundTripper
	hosts sync.Map
}

func (f *floor) RoundTrip(req *http.Request) (*http.Response, error) {
	v, ok := f.hosts.Load(req.URL.Host)
	if !ok {
		v, _ = f.hosts.LoadOrStore(req.URL.Host, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
	return f.base.RoundTrip(req)
}

func requests(b *testing.B, hosts int) []*http.Request {
	reqs := make([]*http.Request, hosts)
	for i := range reqs {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://host-%d.test:8080/menu", i), nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = req
	}
	return reqs
}

func contenders(b *testing.B, base http.RoundTripper) map[string]http.RoundTripper {
	rt, err := httpbreaker.New(base)
	if err != nil {
		b.Fatal(err)
	}
	return map[string]http.RoundTripper{"bare": base, "floor": &floor{base: base}, "httpbreaker": rt}
}

var names = []string{"bare", "floor", "httpbreaker"}

func benchSerial(b *testing.B, rt http.RoundTripper, reqs []*http.Request) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := rt.RoundTrip(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchParallel calls reqs in order from every goroutine, each starting
// on other hosts.
func benchParallel(b *testing.B, rt http.RoundTripper, reqs []*http.Request) {
	benchWalk(b, rt, reqs, func(g int) int { return (g + 1) * 7919 }, 1)
}

// benchWalk calls reqs from every goroutine of RunParallel, goroutine g
// (0, 1, …) starting at first(g) and stepping step requests at a time.
func benchWalk(b *testing.B, rt http.RoundTripper, reqs []*http.Request, first func(g int) int, step int) {
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := first(int(next.Add(1) - 1))
		for pb.Next() {
			i += step
			if _, err := rt.RoundTrip(reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkRoundTripClosed(b *testing.B) {
	all := contenders(b, newOKBase())
	reqs := requests(b, 1)
	for _, name := range names {
		b.Run(name, func(b *testing.B) { benchSerial(b, all[name], reqs) })
	}
}

func BenchmarkRoundTripClosedParallel1000Hosts(b *testing.B) {
	all := contenders(b, newOKBase())
	reqs := requests(b, 1000)
	for _, name := range names {
		b.Run(name, func(b *testing.B) { benchParallel(b, all[name], reqs) })
	}
}

// openTransport returns a Transport whose circuits for reqs are all open
// for the rest of the benchmark.
func openTransport(b *testing.B, reqs []*http.Request) *httpbreaker.Transport {
	failing := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errUpstream })
	rt, err := httpbreaker.New(failing, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	if err != nil {
		b.Fatal(err)
	}
	for _, req := range reqs {
		_, _ = rt.RoundTrip(req)
	}
	return rt
}

func BenchmarkRoundTripOpen(b *testing.B) {
	reqs := requests(b, 1)
	rt := openTransport(b, reqs)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.RoundTrip(reqs[0]); err == nil {
			b.Fatal("not refused")
		}
	}
}

func BenchmarkRoundTripOpenParallel1000Hosts(b *testing.B) {
	reqs := requests(b, 1000)
	rt := openTransport(b, reqs)
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			if _, err := rt.RoundTrip(reqs[i%len(reqs)]); err == nil {
				b.Error("not refused")
				return
			}
		}
	})
}

// BenchmarkContextControls prices WithKey and WithoutBreaker on the closed
// path: before any such context exists (one atomic load), after one was
// made (a context lookup per request), and for a request that carries one.
func BenchmarkContextControls(b *testing.B) {
	was := httpbreaker.SetControlsSeen(false)
	defer httpbreaker.SetControlsSeen(was)
	rt, err := httpbreaker.New(newOKBase())
	if err != nil {
		b.Fatal(err)
	}
	plain := requests(b, 1)
	keyed := []*http.Request{plain[0].WithContext(httpbreaker.WithKey(context.Background(), "tenant-a"))}
	httpbreaker.SetControlsSeen(false)
	b.Run("never-used", func(b *testing.B) { benchSerial(b, rt, plain) })
	httpbreaker.SetControlsSeen(true)
	b.Run("used-elsewhere", func(b *testing.B) { benchSerial(b, rt, plain) })
	b.Run("WithKey", func(b *testing.B) { benchSerial(b, rt, keyed) })
}
