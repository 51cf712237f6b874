package httpbreaker_test

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"

	"github.com/httpbreaker/httpbreaker"
)

// Counting happens on every call: under parallel load on one host the
// counters are shared by every goroutine. The floor pays one shared atomic
// add too.
func BenchmarkRoundTripClosedParallelOneHost(b *testing.B) {
	all := contenders(b, newOKBase())
	reqs := requests(b, 1)
	for _, name := range names {
		b.Run(name, func(b *testing.B) { benchParallel(b, all[name], reqs) })
	}
}

// BenchmarkRoundTripClosedParallelNeighbours calls 1000 tracked hosts from
// each goroutine in turn, goroutine g taking the hosts ≡ g modulo
// GOMAXPROCS: hosts tracked one after the other, whose records sit side by
// side in memory, are called from different cores at once. Beside the
// 1000-host benchmark (where each goroutine walks every host in order,
// from a start of its own) it shows what two hosts' records sharing a
// cache line would cost.
func BenchmarkRoundTripClosedParallelNeighbours(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	benchTracked(b, func(b *testing.B, rt http.RoundTripper, reqs []*http.Request) {
		benchWalk(b, rt, reqs, func(g int) int { return g%procs - procs }, procs) // a step comes before each call
	})
}

// BenchmarkRoundTripClosedParallelScattered is the 1000-host benchmark
// with each goroutine stepping 389 hosts at a time (coprime with 1000, so
// it still calls every host): consecutive calls go to hosts whose records
// lie far apart, as most programs' calls do, rather than to the next host
// tracked, whose 8-byte floor counter shares a cache line with this one's.
func BenchmarkRoundTripClosedParallelScattered(b *testing.B) {
	benchTracked(b, func(b *testing.B, rt http.RoundTripper, reqs []*http.Request) {
		benchWalk(b, rt, reqs, func(g int) int { return (g + 1) * 7919 }, 389)
	})
}

// benchTracked runs bench for each contender over 1000 hosts it tracked
// first, in order: their records lie side by side.
func benchTracked(b *testing.B, bench func(*testing.B, http.RoundTripper, []*http.Request)) {
	all := contenders(b, newOKBase())
	reqs := requests(b, 1000)
	for _, name := range names {
		rt := all[name]
		for _, req := range reqs {
			_, _ = rt.RoundTrip(req)
		}
		b.Run(name, func(b *testing.B) { bench(b, rt, reqs) })
	}
}

// BenchmarkMemoryPerHost tracks 100k hosts per iteration in a fresh
// Transport and reports the heap growth per host, requests excluded.
func BenchmarkMemoryPerHost(b *testing.B) {
	const n = 100_000
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i], _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://host-%d.test:8080/", i), nil)
	}
	var perHost float64
	for b.Loop() {
		rt := newTransport(b, newOKBase(), httpbreaker.WithMaxHosts(n))
		before := heapInUse()
		for _, req := range reqs {
			_, _ = rt.RoundTrip(req)
		}
		after := heapInUse()
		runtime.KeepAlive(rt)
		perHost += float64(after-before) / n
	}
	b.ReportMetric(perHost/float64(b.N), "B/host")
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkNewHostAtTheBound admits a host never seen into a Transport
// already tracking WithMaxHosts hosts, as a crawler does all day: each
// admission forgets an old host. It reports the cost per new host.
// BenchmarkNewCrawlerHostAtTheBound is a crawler's steady state: every
// request to a host the Transport has never seen, named as crawled hosts
// are, at the bound. (It stops at 1<<20 new hosts: keep -benchtime under
// that many iterations.)
func BenchmarkNewCrawlerHostAtTheBound(b *testing.B) {
	const unique = 1 << 20
	for _, max := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("max=%d", max), func(b *testing.B) {
			rt := newTransport(b, newOKBase(), httpbreaker.WithMaxHosts(max))
			for i := range max {
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://n%d.example.test/", i), nil)
				_, _ = rt.RoundTrip(req)
			}
			reqs := make([]*http.Request, unique)
			for i := range reqs {
				reqs[i], _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://n%d.example.test/", 10*max+i), nil)
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if i == unique {
					b.Fatal("out of new hosts: lower -benchtime")
				}
				_, _ = rt.RoundTrip(reqs[i])
				i++
			}
		})
	}
}

func BenchmarkNewHostAtTheBound(b *testing.B) {
	for _, max := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("max=%d", max), func(b *testing.B) {
			rt := newTransport(b, newOKBase(), httpbreaker.WithMaxHosts(max))
			reqs := make([]*http.Request, 4*max)
			for i := range reqs {
				reqs[i], _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://host-%d.test/", i), nil)
			}
			for _, req := range reqs[:max] { // fill up to the bound
				_, _ = rt.RoundTrip(req)
			}
			i := max
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_, _ = rt.RoundTrip(reqs[i])
				if i++; i == len(reqs) {
					i = 0
				}
			}
		})
	}
}
