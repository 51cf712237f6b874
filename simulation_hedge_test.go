package httpbreaker_test

import (
	"container/heap"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// The hedging simulation (#38): one host with a long tail, offered 100
// calls/s open loop (Poisson), healthy, then degraded (30% of attempts
// slow), then failing (30% of attempts fail fast); deterministic on a fake
// clock. The attempts are modelled here — each attempt's latency and
// answer drawn from the scenario, the first success winning — and every
// decision httpbreaker makes is the Transport's own: admission and the
// verdict through Allow and done, and each hedge's gates (circuit closed,
// no shedding, the retry budget) through HedgeGates.

var simPlots = flag.String("sim.plots", "", "directory to draw the hedging simulation's latency CDFs in (SVG); empty: none")

const (
	hedgeRate  = 100                   // calls per second
	hedgeAfter = 12 * time.Millisecond // the healthy host's p95
	hedgeHost  = "tail.test"
)

// hedgePolicy is the breaker under every contender: a failure rate of a
// quarter over 10s opens it (30% failing does), runs of failures do not.
var hedgeSimPolicy = httpbreaker.Policy{Window: 10 * time.Second, MinimumRequests: 100, FailureRatio: 0.25,
	FailureThreshold: 1000, ResetTimeout: 5 * time.Second}

type hedgeContender struct {
	name     string
	hedges   bool    // sends hedges at hedgeAfter
	gated    bool    // asks the Transport's gates (httpbreaker's hedging)
	budget   float64 // Policy.RetryBudget, with gated
	adaptive bool    // the delay follows the host's p95 (over its last 1000 answers), hedgeAfter its floor
}

var hedgeContenders = []hedgeContender{
	{name: "no hedging"},
	{name: "fixed hedge, no budget", hedges: true},
	{name: "httpbreaker, budget 0.1", hedges: true, gated: true, budget: 0.1},
	{name: "httpbreaker, budget 0.2", hedges: true, gated: true, budget: 0.2},
	{name: "adaptive delay, budget 0.1", hedges: true, gated: true, budget: 0.1, adaptive: true},
}

// hedgeScenario draws an attempt's latency and whether it fails.
type hedgeScenario struct {
	name   string
	length time.Duration
	draw   func(r *rand.Rand) (time.Duration, bool)
}

func uniformMs(r *rand.Rand, lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*r.Float64()) * float64(time.Millisecond))
}

// tailed is the healthy host: 98% of attempts in 8–12 ms, 2% in 150–250 ms.
func tailed(slowShare float64) func(r *rand.Rand) (time.Duration, bool) {
	return func(r *rand.Rand) (time.Duration, bool) {
		if r.Float64() < slowShare {
			return uniformMs(r, 150, 250), false
		}
		return uniformMs(r, 8, 12), false
	}
}

var hedgeScenarios = []hedgeScenario{
	{"healthy (2% slow)", 5 * time.Minute, tailed(0.02)},
	{"degraded (30% slow)", 5 * time.Minute, tailed(0.30)},
	{"failing (30% fail fast)", 2 * time.Minute, func(r *rand.Rand) (time.Duration, bool) {
		d, _ := tailed(0.02)(r)
		return d, r.Float64() < 0.3
	}},
}

type hedgeRun struct {
	calls, refused, attempts, succeeded int
	latencies                           []time.Duration // of the calls answered
	firstOpen                           time.Duration   // -1: never
}

func (r hedgeRun) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

func (r hedgeRun) perCall() float64 { return float64(r.attempts) / float64(r.calls-r.refused) }

// hedgeCall is one call in flight.
type hedgeCall struct {
	start            time.Duration
	done             func(httpbreaker.Outcome)
	inFlight, hedges int
	decided, over    bool
}

type hedgeEvent struct {
	at      time.Duration
	call    *hedgeCall
	kind    int // 0 arrival, 1 hedge timer, 2 attempt's answer
	failed  bool
	isFirst bool
}

type hedgeEvents []hedgeEvent

func (q hedgeEvents) Len() int           { return len(q) }
func (q hedgeEvents) Less(i, j int) bool { return q[i].at < q[j].at }
func (q hedgeEvents) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *hedgeEvents) Push(x any)        { *q = append(*q, x.(hedgeEvent)) }
func (q *hedgeEvents) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func runHedging(t *testing.T, c hedgeContender, sc hedgeScenario, seed uint64) hedgeRun {
	clock := newClock()
	policy := hedgeSimPolicy
	if c.gated {
		policy.HedgeAfter, policy.RetryBudget = hedgeAfter, c.budget
	}
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	random := rand.New(rand.NewPCG(seed, *simSeed))
	arrivals := rand.New(rand.NewPCG(seed+1, *simSeed))
	run := hedgeRun{firstOpen: -1}
	ctx := context.Background()
	q := &hedgeEvents{}
	for at := time.Duration(0); at < sc.length; at += time.Duration(arrivals.ExpFloat64() / hedgeRate * float64(time.Second)) {
		heap.Push(q, hedgeEvent{at: at, kind: 0})
	}
	delay := hedgeAfter
	var recent []time.Duration // the host's last answers, for the adaptive delay
	send := func(call *hedgeCall, now time.Duration, first bool) {
		d, failed := sc.draw(random)
		if c.adaptive {
			recent = append(recent, d)
			if len(recent) > 1000 {
				recent = recent[len(recent)-1000:]
			}
			if run.attempts%100 == 0 && len(recent) >= 100 {
				sorted := slices.Sorted(slices.Values(recent))
				delay = max(hedgeAfter, sorted[len(sorted)*95/100])
			}
		}
		call.inFlight++
		run.attempts++
		heap.Push(q, hedgeEvent{at: now + d, call: call, kind: 2, failed: failed, isFirst: first})
	}
	end := func(call *hedgeCall, now time.Duration, o httpbreaker.Outcome) {
		call.decided = true
		call.done(o)
		run.latencies = append(run.latencies, now-call.start)
		if o == httpbreaker.Success {
			run.succeeded++
		}
	}
	for q.Len() > 0 {
		e := heap.Pop(q).(hedgeEvent)
		clock.At(e.at)
		switch e.kind {
		case 0:
			run.calls++
			done, err := rt.Allow(ctx, hedgeHost)
			if err != nil {
				run.refused++
				continue
			}
			call := &hedgeCall{start: e.at, done: done}
			send(call, e.at, true)
			if c.hedges {
				heap.Push(q, hedgeEvent{at: e.at + delay, call: call, kind: 1})
			}
		case 1:
			call := e.call
			if call.decided || call.over {
				continue
			}
			if c.gated && !httpbreaker.HedgeGates(rt, hedgeHost) {
				call.over = true
				continue
			}
			call.hedges++
			send(call, e.at, false)
		case 2:
			call := e.call
			call.inFlight--
			if call.decided {
				continue
			}
			switch {
			case !e.failed:
				end(call, e.at, httpbreaker.Success)
			case call.inFlight > 0: // wait for the others, sending no more
				call.over = true
			default:
				end(call, e.at, httpbreaker.Failure)
			}
		}
		if run.firstOpen < 0 && rt.IsOpen(hedgeHost) {
			run.firstOpen = e.at
		}
	}
	slices.Sort(run.latencies)
	return run
}

func TestHedgingSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short")
	}
	runs := make([][]hedgeRun, len(hedgeScenarios))
	var table strings.Builder
	fmt.Fprintf(&table, "%-24s %-27s %8s %8s %8s %14s %9s %10s\n", "scenario", "contender", "p50", "p99", "p999", "attempts/call", "goodput", "opened at")
	for i, sc := range hedgeScenarios {
		for j, c := range hedgeContenders {
			r := runHedging(t, c, sc, uint64(100+i))
			runs[i] = append(runs[i], r)
			opened := "never"
			if r.firstOpen >= 0 {
				opened = r.firstOpen.Round(100 * time.Millisecond).String()
			}
			name := sc.name
			if j > 0 {
				name = ""
			}
			fmt.Fprintf(&table, "%-24s %-27s %8v %8v %8v %14.3f %8.1f%% %10s\n", name, c.name,
				r.quantile(0.5).Round(100*time.Microsecond), r.quantile(0.99).Round(100*time.Microsecond), r.quantile(0.999).Round(100*time.Microsecond),
				r.perCall(), 100*float64(r.succeeded)/float64(r.calls), opened)
		}
	}
	t.Logf("one host, %d calls/s open loop (Poisson); attempts: 98%% in 8–12 ms, 2%% in 150–250 ms (healthy); hedge after %v; "+
		"latency of the calls answered; attempts/call per call admitted; the breaker: Window 10s, FailureRatio 0.25\n%s", hedgeRate, hedgeAfter, table.String())

	healthy, degraded, failing := runs[0], runs[1], runs[2]
	none, fixed := 0, 1
	for j, c := range hedgeContenders {
		if !c.gated {
			continue
		}
		assert.LessOrEqual(t, 3*healthy[j].quantile(0.99), healthy[none].quantile(0.99), "%s: healthy p99 at least 3× lower", c.name)
		assert.LessOrEqual(t, healthy[j].perCall(), 1.1, "%s: healthy, at most 1.1 attempts per call", c.name)
		assert.LessOrEqual(t, degraded[j].perCall(), 1+c.budget+0.01, "%s: degraded, within 1 + RetryBudget (and the floor)", c.name)
		require.GreaterOrEqual(t, failing[j].firstOpen, time.Duration(0), "%s: failing, the breaker opens", c.name)
		assert.InDelta(t, failing[none].firstOpen.Seconds(), failing[j].firstOpen.Seconds(), 1, "%s: as it opens without hedging", c.name)
	}
	assert.Greater(t, degraded[fixed].perCall(), 1.25, "unbudgeted hedges storm a degraded host")
	require.GreaterOrEqual(t, failing[none].firstOpen, time.Duration(0))

	if *simPlots != "" {
		for i, name := range []string{"healthy", "degraded"} {
			path := filepath.Join(*simPlots, "hedging-cdf-"+name+".svg")
			floor := []float64{0.9, 0.5}[i] // where each one's tail begins
			require.NoError(t, os.WriteFile(path, []byte(cdfSVG(hedgeScenarios[i].name, runs[i], floor)), 0o644))
			t.Logf("drew %s", path)
		}
	}
}

// cdfSVG draws each contender's latency CDF, on a log time axis from 5 ms
// to 400 ms and a share axis from floor to 100%, where the tail is.
func cdfSVG(title string, runs []hedgeRun, floor float64) string {
	const w, h, left, right, top, bottom = 680, 360, 60, 220, 30, 40
	lo, hi := math.Log(5), math.Log(400)
	x := func(d time.Duration) float64 {
		ms := math.Min(math.Max(float64(d)/float64(time.Millisecond), 5), 400)
		return left + (math.Log(ms)-lo)/(hi-lo)*(w-left-right)
	}
	y := func(share float64) float64 {
		return top + (1-math.Max(share, floor))/(1-floor)*(h-top-bottom)
	}
	colors := []string{"#444", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"}
	dashes := []string{"", "", "7 4", "2 4", "1 3"} // the hedged contenders often coincide
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="18" font-size="13">Caller latency, %s: share of calls answered within</text>`+"\n", left, title)
	for _, ms := range []float64{5, 10, 20, 50, 100, 200, 400} {
		px := x(time.Duration(ms * float64(time.Millisecond)))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%g ms</text>`+"\n", px, top, px, h-bottom, px, h-bottom+15, ms)
	}
	for _, share := range []float64{0.5, 0.7, 0.9, 0.95, 0.99, 1} {
		if share < floor || share == 0.99 && floor < 0.9 { // 99% would sit on 100%
			continue
		}
		py := y(share)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g%%</text>`+"\n", left, py, w-right, py, left-5, py+4, share*100)
	}
	for i, r := range runs {
		var points strings.Builder
		n := len(r.latencies)
		for k := 0; k < n; k += max(1, n/2000) {
			fmt.Fprintf(&points, "%.1f,%.1f ", x(r.latencies[k]), y(float64(k+1)/float64(n)))
		}
		fmt.Fprintf(&points, "%.1f,%.1f", x(r.latencies[n-1]), y(1))
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="%s" points="%s"/>`+"\n", colors[i], dashes[i], points.String())
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`+"\n",
			w-right+10, top+10+18*i, w-right+30, top+10+18*i, colors[i], w-right+35, top+14+18*i, hedgeContenders[i].name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
