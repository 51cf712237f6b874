// Package bench compares httpbreaker with the breakers Go users reach for
// today, each scenario for every contender in one `go test -bench` run.
// `make bench` at the repository root runs it and writes RESULTS.md.
package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/hashicorp/go-cleanhttp"
)

// fakeBase answers every request with one shared response: 200, or 503
// while failing. It counts calls only while failing, so the closed-path
// benchmarks share no counter across goroutines.
type fakeBase struct {
	ok, fail *http.Response
	failing  atomic.Bool
	calls    atomic.Int64
}

func newFakeBase() *fakeBase {
	return &fakeBase{
		ok:   &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody},
		fail: &http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody},
	}
}

func (f *fakeBase) RoundTrip(*http.Request) (*http.Response, error) {
	if f.failing.Load() {
		f.calls.Add(1)
		return f.fail, nil
	}
	return f.ok, nil
}

func requests(b *testing.B, n int) []*http.Request {
	reqs := make([]*http.Request, n)
	for i := range reqs {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://host-%d.test:8080/menu", i), nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = req
	}
	return reqs
}

func BenchmarkClosedSerial(b *testing.B) {
	reqs := requests(b, 1)
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			b.Cleanup(hystrix.Flush) // hystrix keeps every command in a global registry
			rt := c.wrap(newFakeBase())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.RoundTrip(reqs[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClosedParallel1000Hosts(b *testing.B) {
	reqs := requests(b, 1000)
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			b.Cleanup(hystrix.Flush) // hystrix keeps every command in a global registry
			rt := c.wrap(newFakeBase())
			for _, req := range reqs { // track every host before timing
				_, _ = rt.RoundTrip(req)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919))
				for pb.Next() {
					i++
					if _, err := rt.RoundTrip(reqs[i%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// tripped returns rt over a failing base with the circuit of req open.
func tripped(b *testing.B, c contender, req *http.Request) (http.RoundTripper, *fakeBase) {
	base := newFakeBase()
	base.failing.Store(true)
	rt := c.wrap(base)
	for range 1000 {
		before := base.calls.Load()
		_, _ = rt.RoundTrip(req)
		if base.calls.Load() == before {
			return rt, base
		}
		if c.name == "hystrix" {
			time.Sleep(time.Millisecond) // hystrix counts asynchronously
		}
	}
	return nil, base
}

// onlyClosedPath reports whether c is httpbreaker under another policy,
// there to price its closed path and memory: its circuit opens and refuses
// as httpbreaker's does (and the throttle refuses before it opens).
func onlyClosedPath(c contender) bool { return strings.HasPrefix(c.name, "httpbreaker-") }

func BenchmarkOpenRefusal(b *testing.B) {
	reqs := requests(b, 1)
	for _, c := range contenders {
		if c.name == "bare" || c.name == "floor" || c.name == "resty-client" || onlyClosedPath(c) {
			continue // they never refuse, or refuse as httpbreaker does
		}
		b.Run(c.name, func(b *testing.B) {
			b.Cleanup(hystrix.Flush) // hystrix keeps every command in a global registry
			rt, _ := tripped(b, c, reqs[0])
			if rt == nil {
				b.Skip("never opened")
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.RoundTrip(reqs[0]); err == nil {
					b.Fatal("not refused")
				}
			}
		})
	}
}

// BenchmarkCallsUntilOpen counts the calls a failing host receives before
// its circuit refuses: each iteration is a fresh breaker.
func BenchmarkCallsUntilOpen(b *testing.B) {
	reqs := requests(b, 1)
	for _, c := range contenders {
		if c.name == "bare" || c.name == "floor" || c.name == "resty-client" || onlyClosedPath(c) {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			b.Cleanup(hystrix.Flush) // hystrix keeps every command in a global registry
			var calls int64
			for b.Loop() {
				_, base := tripped(b, c, reqs[0])
				calls += base.calls.Load()
			}
			b.ReportMetric(float64(calls)/float64(b.N), "upstream-calls")
		})
	}
}

// BenchmarkMemoryPerHost tracks 100k new hosts per iteration (1k for
// hystrix, whose commands cost hundreds of kilobytes each) in a fresh contender and
// reports the heap growth per host, the requests themselves excluded.
func BenchmarkMemoryPerHost(b *testing.B) {
	for _, c := range contenders {
		if c.name == "bare" || c.name == "resty-client" || c.name == "resty" {
			continue // no per-host state
		}
		b.Run(c.name, func(b *testing.B) {
			b.Cleanup(hystrix.Flush)
			n := 100_000
			if c.name == "hystrix" {
				n = 1_000
			}
			reqs := requests(b, n)
			var perHost float64
			for b.Loop() {
				rt := c.wrap(newFakeBase())
				before := heap()
				for _, req := range reqs {
					_, _ = rt.RoundTrip(req)
				}
				after := heap()
				runtime.KeepAlive(rt)
				perHost += float64(after-before) / float64(n)
				hystrix.Flush()
			}
			b.ReportMetric(perHost/float64(b.N), "B/host")
		})
	}
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkLoopback sends real requests to a loopback httptest server
// through go-cleanhttp's pooled transport. Each iteration is a round: a
// block of requests per contender, in an order that rotates every round so
// drift hits them alike. It reports each contender's throughput relative to
// bare as the median of the per-round ratios, which a GC pause or a noisy
// neighbour in one round cannot move.
func BenchmarkLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "menu")
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/menu", nil)
	if err != nil {
		b.Fatal(err)
	}
	type lane struct {
		name   string
		rt     http.RoundTripper
		ratios []float64
		last   time.Duration
	}
	var lanes []*lane
	for _, c := range contenders {
		if c.name == "floor" {
			continue
		}
		base := cleanhttp.DefaultPooledTransport()
		defer base.CloseIdleConnections()
		lanes = append(lanes, &lane{name: c.name, rt: c.wrap(base)})
	}
	const block = 20
	run := func(l *lane) {
		start := time.Now()
		for range block {
			resp, err := l.rt.RoundTrip(req)
			if err != nil {
				b.Fatal(l.name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		l.last = time.Since(start)
	}
	for _, l := range lanes { // warm the connections
		run(l)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range lanes {
			run(lanes[(i+j)%len(lanes)])
		}
		for _, l := range lanes[1:] {
			l.ratios = append(l.ratios, float64(lanes[0].last)/float64(l.last))
		}
	}
	b.StopTimer()
	for _, l := range lanes[1:] {
		slices.Sort(l.ratios)
		b.ReportMetric(l.ratios[len(l.ratios)/2], l.name+"/bare")
	}
}
