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
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/priority"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/internal/knee"
)

var (
	limiters = flag.Bool("limiters", false, "run the real-time comparison of adaptive concurrency limiters (about three minutes)")
	plots    = flag.String("limiters.plots", "", "with -limiters, the directory to write the closed-loop pools' SVG plots to")
)

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
			r := runRealTime(t, c, host, w.Load*capacity, length, w.Mixed, 0, 0, 0)
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

// TestLimitersRealTimePools runs the closed-loop pools of the root
// package's TestConcurrencySimulationClosedLoop in real time on loopback,
// httpbreaker beside failsafe-go, on the real-time host (20 workers, 20ms:
// the knee is 20 calls in flight): goodput against what the host can
// serve, p50 and p99 of answered calls, the share refused, and the limit
// at the end. With -limiters.plots it draws, for the 5x pool from t = 0
// and the 2x pool whose host slows down for good, the limit, the calls in
// flight and the p50 over time, every contender on one chart.
func TestLimitersRealTimePools(t *testing.T) {
	if !*limiters {
		t.Skip("real time, about a minute and a half: run with -limiters (make simulate)")
	}
	const workers, service = 20, 20 * time.Millisecond
	capacity := float64(workers) / service.Seconds()
	length := 7 * time.Second
	var table strings.Builder
	fmt.Fprintf(&table, "%-28s", "limiter")
	for _, p := range knee.Pools {
		fmt.Fprintf(&table, " | %-34s", fmt.Sprintf("%s (%d callers)", p.Name, int(p.Size*workers)))
	}
	fmt.Fprintf(&table, "\n%-28s", "")
	for range knee.Pools {
		fmt.Fprintf(&table, " | %7s %6s %6s %7s %5s", "goodput", "p50", "p99", "refused", "limit")
	}
	table.WriteString("\n")
	var notes strings.Builder
	drawn := map[string][]realTimeResult{} // by pool, in contenders' order
	for _, c := range limiterContenders {
		fmt.Fprintf(&table, "%-28s", c.name)
		for _, p := range knee.Pools {
			host := p.Host(workers, service, 4*workers)
			r := runRealTime(t, c, host, 0, length, false, int(p.Size*workers), int(p.Others*workers), p.OthersUntil)
			// A busy host's columns count only what came after the others left.
			latencies, succeeded := r.latencies, r.succeeded[1]
			served := capacity * length.Seconds()
			if p.Others > 0 {
				latencies, succeeded = r.after(p.OthersUntil)
				served = capacity * (length - p.OthersUntil).Seconds()
				d, share := r.trace.Settled(p.OthersUntil, length, workers)
				came := "never"
				if d >= 0 {
					came = fmt.Sprintf("in %v (then in the band %.0f%% of the time)", d.Round(time.Millisecond), 100*share)
				}
				fmt.Fprintf(&notes, "%s, %s: the limit came within ±25%% of the knee %s after the others left\n", c.name, p.Name, came)
			}
			if p.SlowerFrom >= 0 {
				served = capacity * (p.SlowerFrom.Seconds() + (length-p.SlowerFrom).Seconds()/2)
				d, share := r.trace.Recovered(p.SlowerFrom, length, workers)
				came := "never"
				if d >= 0 {
					came = fmt.Sprintf("in %v (then in the band %.0f%% of the time)", d.Round(time.Millisecond), 100*share)
				}
				fmt.Fprintf(&notes, "%s, %s: the limit came back within ±25%% of the knee %s after the slowdown\n", c.name, p.Name, came)
			}
			if p.Size == 5 || p.SlowerFrom >= 0 {
				drawn[p.Name] = append(drawn[p.Name], r)
			}
			fmt.Fprintf(&table, " | %7.2f %6v %6v %6.1f%% %5d", float64(succeeded)/served,
				knee.Percentile(latencies, 0.5).Round(time.Millisecond), knee.Percentile(latencies, 0.99).Round(time.Millisecond),
				100*float64(r.refused)/float64(max(r.calls[1], 1)), r.trace.Last())
		}
		table.WriteString("\n")
	}
	t.Logf("real time on loopback; host: %d workers, %v a call (capacity %.0f calls/s; half that after a slowdown), 503 past %d waiting; "+
		"%v of a closed-loop pool from t = 0, %v pause after a refusal; goodput against what the host can serve; "+
		"latency is the caller's, from the call to the response headers\n%s%s",
		workers, service, capacity, 4*workers, length, knee.RefusalPause, table.String(), notes.String())
	if *plots == "" {
		return
	}
	for _, p := range knee.Pools {
		runs, ok := drawn[p.Name]
		if !ok {
			continue
		}
		var limit, inFlight, p50 plotPanel
		limit.title = fmt.Sprintf("limit (the knee: %d calls in flight; higher values along the top)", workers)
		limit.ceiling = 5 * workers
		inFlight.title = "calls in flight"
		p50.title = fmt.Sprintf("p50 latency of successful calls, ms, per 100ms (service time %v)", service)
		for i, r := range runs {
			name, color := limiterContenders[i].name, plotColors[i%len(plotColors)]
			at, v := series(r.trace)
			limit.lines = append(limit.lines, plotLine{name, color, at, v})
			at, v = series(r.inFlight)
			inFlight.lines = append(inFlight.lines, plotLine{name, color, at, v})
			at, v = p50Series(r.answered, r.latencies, r.ok, length, 100*time.Millisecond)
			p50.lines = append(p50.lines, plotLine{name, color, at, v})
		}
		var marks []time.Duration
		file := "limiters-pool5x.svg"
		switch {
		case p.SlowerFrom >= 0:
			marks, file = []time.Duration{p.SlowerFrom}, "limiters-slower.svg"
		case p.Others > 0:
			marks, file = []time.Duration{p.OthersUntil}, "limiters-busy.svg"
		}
		title := fmt.Sprintf("%s: %d callers in a closed loop, real time on loopback", p.Name, int(p.Size*workers))
		if err := writePlot(*plots, file, svgPlot(title, []plotPanel{limit, inFlight, p50}, length, marks)); err != nil {
			t.Fatal(err)
		}
	}
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
	answered         []time.Duration // when each of latencies came, from the start
	ok               []bool          // and whether it succeeded
	trace            knee.Trace      // the limit, every 10ms
	inFlight         knee.Trace      // the calls in flight, every 10ms
}

// after returns the latencies of the calls answered from from on, and how
// many of them succeeded.
func (r realTimeResult) after(from time.Duration) ([]time.Duration, int) {
	var latencies []time.Duration
	succeeded := 0
	for i, at := range r.answered {
		if at >= from {
			latencies = append(latencies, r.latencies[i])
			if r.ok[i] {
				succeeded++
			}
		}
	}
	return latencies, succeeded
}

// runRealTime offers rate calls per second for length to a loopback server
// serving host's model, through c; with mixed, every other call is
// Sheddable (and failsafe-go's priority Low, the rest High). With pool > 0
// it runs pool callers in a closed loop instead (rate unused): each sends
// its next call when its last is answered, knee.RefusalPause after a
// refusal.
//
// others, until othersUntil, are other clients' callers in a closed loop
// on the same server, with no limiter.
func runRealTime(t *testing.T, c limiterContender, host *knee.Host, rate float64, length time.Duration, mixed bool, pool int,
	others int, othersUntil time.Duration) realTimeResult {
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
	var inFlight atomic.Int64
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
				l, n := limit(), int(inFlight.Load())
				resMu.Lock()
				res.trace.Add(at, l)
				res.inFlight.Add(at, n)
				resMu.Unlock()
			}
		}
	}()
	// call makes one call and reports whether it was refused.
	call := func(class int) (refused bool) {
		ctx := context.Background()
		if class == 0 {
			ctx = httpbreaker.WithCriticality(ctx, httpbreaker.Sheddable)
			ctx = priority.ContextWithPriority(ctx, priority.Low)
		} else {
			ctx = priority.ContextWithPriority(ctx, priority.High)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		began := time.Now()
		inFlight.Add(1)
		resp, err := client.Do(req)
		took := time.Since(began)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		inFlight.Add(-1)
		resMu.Lock()
		defer resMu.Unlock()
		res.calls[class]++
		switch {
		case err != nil && (errors.Is(err, httpbreaker.ErrOverloaded) || errors.Is(err, adaptivelimiter.ErrExceeded)):
			res.refused++
			return true
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		default:
			res.latencies = append(res.latencies, took)
			res.answered = append(res.answered, began.Add(took).Sub(start))
			res.ok = append(res.ok, resp.StatusCode == http.StatusOK)
			if began.Sub(start) >= time.Second {
				res.steady = append(res.steady, took)
			}
			if resp.StatusCode == http.StatusOK {
				res.succeeded[class]++
			}
		}
		return false
	}
	other := &http.Client{Transport: base}
	for range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < othersUntil {
				resp, err := other.Get(srv.URL)
				if err != nil {
					t.Errorf("another client: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					time.Sleep(knee.RefusalPause)
				}
			}
		}()
	}
	if pool > 0 {
		for range pool {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < length {
					if call(1) {
						time.Sleep(knee.RefusalPause)
					}
				}
			}()
		}
	}
	arrivals := rand.New(rand.NewPCG(3, 4))
	next := time.Duration(0)
	for i := 0; pool == 0 && next < length; i++ {
		time.Sleep(time.Until(start.Add(next)))
		class := 1
		if mixed && i%2 == 0 {
			class = 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(class)
		}()
		next += time.Duration(arrivals.ExpFloat64() / rate * float64(time.Second))
	}
	wg.Wait()
	close(done)
	resMu.Lock()
	defer resMu.Unlock()
	return res
}
