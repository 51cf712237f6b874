package httpbreaker_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/httpbreaker/httpbreaker"
)

// mutexBreaker is the naive timed breaker the policy benchmarks measure
// against: per host in a sync.Map, a mutex taken before and after the call
// and one time.Now() per call, around a count of failures. (gobreaker takes
// its mutex and reads the clock on both sides.)
type mutexBreaker struct {
	base  http.RoundTripper
	hosts sync.Map // host → *mutexHost
}

type mutexHost struct {
	mu        sync.Mutex
	failures  int
	lastCall  time.Time
	openUntil time.Time
}

func (m *mutexBreaker) RoundTrip(req *http.Request) (*http.Response, error) {
	v, ok := m.hosts.Load(req.URL.Host)
	if !ok {
		v, _ = m.hosts.LoadOrStore(req.URL.Host, new(mutexHost))
	}
	h := v.(*mutexHost)
	h.mu.Lock()
	now := time.Now()
	if now.Before(h.openUntil) {
		h.mu.Unlock()
		return nil, httpbreaker.ErrCircuitOpen
	}
	h.lastCall = now
	h.mu.Unlock()
	resp, err := m.base.RoundTrip(req)
	h.mu.Lock()
	if err != nil || resp.StatusCode != http.StatusOK {
		h.failures++
	} else {
		h.failures = 0
	}
	h.mu.Unlock()
	return resp, err
}

// policyContenders are the timed policies beside the default one, over one
// base, for side-by-side figures.
func policyContenders(b *testing.B) map[string]http.RoundTripper {
	base := newOKBase()
	make := func(p httpbreaker.Policy) http.RoundTripper {
		rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(p))
		if err != nil {
			b.Fatal(err)
		}
		return rt
	}
	return map[string]http.RoundTripper{
		"bare":         base,
		"mutex+now":    &mutexBreaker{base: base},
		"default":      make(httpbreaker.Policy{}),
		"window":       make(httpbreaker.Policy{Window: 30 * time.Second}),
		"slowcall":     make(httpbreaker.Policy{SlowCall: time.Second}),
		"window+slow":  make(httpbreaker.Policy{Window: 30 * time.Second, SlowCall: time.Second}),
		"all-policies": make(httpbreaker.Policy{Window: 30 * time.Second, SlowCall: time.Second, MaxResetTimeout: time.Hour, MaxRetryAfter: time.Minute}),
		"throttle":     make(httpbreaker.Policy{Window: 30 * time.Second, Throttle: 1.5}),
		"concurrency":  make(httpbreaker.Policy{MaxConcurrent: 1 << 20}),
		// its floor at its ceiling: the sample and the windows, no refusal
		"adaptive": make(httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 1 << 20, MinConcurrent: 1 << 20}),
		"budget":   make(httpbreaker.Policy{Window: 30 * time.Second, RetryBudget: 0.2}),
		// every call answered before HedgeAfter: the hedge's timer, started and stopped
		"hedge": make(httpbreaker.Policy{HedgeAfter: time.Second}),
	}
}

var policyNames = []string{"bare", "mutex+now", "default", "window", "slowcall", "window+slow", "all-policies", "throttle", "concurrency", "adaptive", "budget", "hedge"}

// BenchmarkTimer is a timer's worth, the yardstick of hedging's cost: a
// time.AfterFunc started and stopped before it fires.
func BenchmarkTimer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		time.AfterFunc(time.Second, func() {}).Stop()
	}
}

func BenchmarkPolicyClosed(b *testing.B) {
	all := policyContenders(b)
	reqs := requests(b, 1)
	for _, name := range policyNames {
		b.Run(name, func(b *testing.B) { benchSerial(b, all[name], reqs) })
	}
}

func BenchmarkPolicyClosedParallel1000Hosts(b *testing.B) {
	all := policyContenders(b)
	reqs := requests(b, 1000)
	for _, name := range policyNames {
		b.Run(name, func(b *testing.B) { benchParallel(b, all[name], reqs) })
	}
}

// BenchmarkConcurrencyCapWithBody measures what holding a MaxConcurrent
// slot in the response body costs: a wrapper and its finalizer per call.
// The base returns a small body, read and closed as a caller would.
func BenchmarkConcurrencyCapWithBody(b *testing.B) {
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
	})
	for _, c := range []struct {
		name   string
		policy httpbreaker.Policy
	}{
		{"default", httpbreaker.Policy{}},
		{"maxconcurrent", httpbreaker.Policy{MaxConcurrent: 1 << 20}},
		{"adaptive", httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 1 << 20, MinConcurrent: 1 << 20}},
	} {
		rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(c.policy))
		if err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
}

// BenchmarkAllowRetry prices a retry decision on a tracked, closed host:
// allowed (a floor no benchmark spends), and denied by an open circuit.
func BenchmarkAllowRetry(b *testing.B) {
	for _, c := range []struct {
		name   string
		status int
	}{{"allowed", http.StatusOK}, {"denied-open", http.StatusInternalServerError}} {
		rt, err := httpbreaker.New(roundTripFunc(func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: c.status, Body: http.NoBody, Request: req}, nil
		}), httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Hour, RetryBudget: 0.2, MinRetries: 1<<30 - 1, FailureThreshold: 1}))
		if err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			want := c.status == http.StatusOK
			for b.Loop() {
				if rt.AllowRetry(req) != want {
					b.Fatal("unexpected answer")
				}
			}
		})
	}
}
