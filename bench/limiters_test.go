package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/priority"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/internal/knee"
)

var limiters = flag.Bool("limiters", false, "run the real-time comparison of adaptive concurrency limiters (about a minute)")

// TestLimitersRealTime runs the root package's concurrency simulation in
// real time on loopback, because failsafe-go's adaptive limiter reads the
// wall clock: a real server with the knee host's model (internal/knee)
// behind httpbreaker's AdaptiveConcurrency and behind failsafe-go's
// adaptivelimiter through its failsafehttp RoundTripper, both with their
// defaults, under the same Poisson arrivals. The host is smaller and
// slower than the simulation's (20 workers, 20ms a call: 1000 calls/s) so
// that two cores can drive twice its capacity. `make simulate` runs it.
func TestLimitersRealTime(t *testing.T) {
	if !*limiters {
		t.Skip("real time, about a minute: run with -limiters (make simulate)")
	}
	const workers, service = 20, 20 * time.Millisecond
	capacity := float64(workers) / service.Seconds()
	length := 5 * time.Second
	workloads := knee.Workloads
	var table strings.Builder
	fmt.Fprintf(&table, "%-28s", "limiter")
	for _, w := range workloads {
		fmt.Fprintf(&table, " | %-38s", w.Name)
	}
	fmt.Fprintf(&table, "\n%-28s", "")
	for range workloads {
		fmt.Fprintf(&table, " | %7s %6s %7s %7s %7s", "goodput", "p50", "p99", "p99 1s+", "refused")
	}
	table.WriteString("\n")
	var notes strings.Builder
	for _, c := range limiterContenders {
		fmt.Fprintf(&table, "%-28s", c.name)
		for _, w := range workloads {
			host := w.Host(workers, service, 4*workers)
			r := runRealTime(t, c, host, w.Load*capacity, length, w.Mixed)
			goodput := float64(r.succeeded[0]+r.succeeded[1]) / length.Seconds() / capacity
			if w.Mixed {
				goodput = float64(r.succeeded[1]) / float64(r.calls[1])
				fmt.Fprintf(&notes, "%s, %s: goodput against demand, Critical %.2f, Sheddable %.2f\n", c.name, w.Name,
					goodput, float64(r.succeeded[0])/float64(r.calls[0]))
			}
			fmt.Fprintf(&table, " | %7.2f %6v %7v %7v %6.1f%%", goodput, knee.Percentile(r.latencies, 0.5).Round(time.Millisecond),
				knee.Percentile(r.latencies, 0.99).Round(time.Millisecond), knee.Percentile(r.steady, 0.99).Round(time.Millisecond),
				100*float64(r.refused)/float64(r.calls[0]+r.calls[1]))
			if w.Halved {
				came := "never"
				if d, _ := r.trace.Settled(knee.HalvedFrom, knee.HalvedTo, workers/2); d >= 0 {
					came = "in " + d.Round(time.Millisecond).String()
				}
				fmt.Fprintf(&notes, "%s, %s: the limit came within ±25%% of the knee %s after the halving\n", c.name, w.Name, came)
			}
		}
		table.WriteString("\n")
	}
	t.Logf("real time on loopback; host: %d workers, %v a call (capacity %.0f calls/s), 503 past %d waiting; %v of Poisson arrivals; "+
		"latency is the caller's, from the call to the response headers, of calls that got an answer; "+
		"p99 1s+ is that of the calls made after the first second, the limiters' start left out\n%s%s",
		workers, service, capacity, 4*workers, length, table.String(), notes.String())
}

// limiterContender builds a client for the knee host at url, with a way to
// read its limit now.
type limiterContender struct {
	name string
	make func(base http.RoundTripper, url string) (rt http.RoundTripper, limit func() int, stop func())
}

var limiterContenders = []limiterContender{
	{"httpbreaker adaptive", func(base http.RoundTripper, url string) (http.RoundTripper, func() int, func()) {
		rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{AdaptiveConcurrency: true, FailureThreshold: 1 << 20}))
		if err != nil {
			panic(err)
		}
		host := strings.TrimPrefix(url, "http://")
		return rt, func() int { return rt.Status(host).Limit }, func() {}
	}},
	{"failsafe-go adaptivelimiter", func(base http.RoundTripper, _ string) (http.RoundTripper, func() int, func()) {
		limiter := adaptivelimiter.NewWithDefaults[*http.Response]()
		return failsafehttp.NewRoundTripper(base, limiter), limiter.Limit, func() {}
	}},
	{"failsafe-go prioritized", func(base http.RoundTripper, _ string) (http.RoundTripper, func() int, func()) {
		prioritizer := adaptivelimiter.NewPrioritizer()
		stop := prioritizer.ScheduleCalibrations(context.Background(), 100*time.Millisecond)
		limiter := adaptivelimiter.NewBuilder[*http.Response]().BuildPrioritized(prioritizer)
		return failsafehttp.NewRoundTripper(base, limiter), limiter.Limit, stop
	}},
}

type realTimeResult struct {
	calls, succeeded [2]int // [0] Sheddable, [1] the rest
	refused          int
	latencies        []time.Duration
	steady           []time.Duration // of the calls made after the first second
	trace            knee.Trace
}

// runRealTime offers rate calls per second for length to a loopback server
// serving host's model, through c; with mixed, every other call is
// Sheddable (and failsafe-go's priority Low, the rest High).
func runRealTime(t *testing.T, c limiterContender, host *knee.Host, rate float64, length time.Duration, mixed bool) realTimeResult {
	var mu sync.Mutex // guards host
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		status, latency := host.Answer(time.Since(start))
		mu.Unlock()
		time.Sleep(latency)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	base := &http.Transport{MaxIdleConnsPerHost: 4096}
	defer base.CloseIdleConnections()
	rt, limit, stop := c.make(base, srv.URL)
	defer stop()
	client := &http.Client{Transport: rt}

	var res realTimeResult
	var resMu sync.Mutex
	var wg sync.WaitGroup
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	done := make(chan struct{})
	go func() { // the limit, every 10ms
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				at := time.Since(start)
				l := limit()
				resMu.Lock()
				res.trace.Add(at, l)
				resMu.Unlock()
			}
		}
	}()
	arrivals := rand.New(rand.NewPCG(3, 4))
	next := time.Duration(0)
	for i := 0; next < length; i++ {
		time.Sleep(time.Until(start.Add(next)))
		class := 1
		if mixed && i%2 == 0 {
			class = 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if class == 0 {
				ctx = httpbreaker.WithCriticality(ctx, httpbreaker.Sheddable)
				ctx = priority.ContextWithPriority(ctx, priority.Low)
			} else {
				ctx = priority.ContextWithPriority(ctx, priority.High)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			began := time.Now()
			resp, err := client.Do(req)
			took := time.Since(began)
			resMu.Lock()
			defer resMu.Unlock()
			res.calls[class]++
			switch {
			case err != nil && (errors.Is(err, httpbreaker.ErrOverloaded) || errors.Is(err, adaptivelimiter.ErrExceeded)):
				res.refused++
			case err != nil:
				t.Errorf("%s: %v", c.name, err)
			default:
				res.latencies = append(res.latencies, took)
				if began.Sub(start) >= time.Second {
					res.steady = append(res.steady, took)
				}
				if resp.StatusCode == http.StatusOK {
					res.succeeded[class]++
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
		next += time.Duration(arrivals.ExpFloat64() / rate * float64(time.Second))
	}
	wg.Wait()
	close(done)
	resMu.Lock()
	defer resMu.Unlock()
	return res
}
