package httpbreaker_test

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/httpbreaker/httpbreaker"
)

// The retry simulation: clients that retry like go-retryablehttp (up to 3
// retries, exponential backoff from 200ms with jitter) in front of one
// host offered 100 calls/s, deterministic on a fake clock. It shows what
// retries cost a host on a bad day, with and without a breaker and a
// retry budget (#27).

// retryContender is how a client decides to retry.
type retryContender struct {
	name   string
	policy *httpbreaker.Policy // nil: no breaker, retries alone
	budget bool                // ask AllowRetry (retryhttp.Budgeted)
}

// retryPolicy is the breaker under every contender that has one: a rate
// window that a 30% failure rate does not trip, 10 failures in a row to
// open on an outage, a probe every 5s.
var retryPolicy = httpbreaker.Policy{Window: 10 * time.Second, FailureThreshold: 10, ResetTimeout: 5 * time.Second}

func withBudget(r float64) *httpbreaker.Policy {
	p := retryPolicy
	p.RetryBudget = r
	return &p
}

var retryContenders = []retryContender{
	{"retries alone", nil, false},
	{"breaker + CheckRetry", &retryPolicy, false},
	{"Budgeted, r = 0.1", withBudget(0.1), true},
	{"Budgeted, r = 0.2", withBudget(0.2), true},
	{"Budgeted, r = 0.3", withBudget(0.3), true},
}

// retryScenario says whether the host fails an attempt at an instant.
type retryScenario struct {
	name   string
	length time.Duration
	fails  func(at time.Duration, random *rand.Rand) bool
}

type retryRun struct {
	calls, attempts, succeeded int
	// for a window [from, to): calls made and attempts reaching the host
	callsIn, attemptsIn [3]int
	firstOpen           time.Duration // -1: never
	recovered           time.Duration // first success at or after recoverAt; -1: never
}

type retryEvent struct {
	at      time.Duration
	call    int
	attempt int
}

type retryEvents []retryEvent

func (q retryEvents) Len() int           { return len(q) }
func (q retryEvents) Less(i, j int) bool { return q[i].at < q[j].at }
func (q retryEvents) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *retryEvents) Push(x any)        { *q = append(*q, x.(retryEvent)) }
func (q *retryEvents) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// runRetries offers 100 calls/s to the scenario's host through c; the
// windows split the run for the per-window figures (outage start, first
// open, recovery), and recoverAt is when the host heals.
func runRetries(t *testing.T, c retryContender, sc retryScenario, outageFrom, recoverAt time.Duration) retryRun {
	t.Helper()
	clock := newClock()
	hostRandom := rand.New(rand.NewPCG(5, 6))
	now := time.Duration(0)
	run := retryRun{firstOpen: -1, recovered: -1}
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		run.attempts++
		if sc.fails(now, hostRandom) {
			return response(req, http.StatusServiceUnavailable, "busy"), nil
		}
		return response(req, http.StatusOK, "ok"), nil
	})
	var rt http.RoundTripper = base
	var breaker *httpbreaker.Transport
	if c.policy != nil {
		breaker = newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(*c.policy),
			httpbreaker.WithOnTransition(func(tr httpbreaker.Transition) {
				if tr.To == httpbreaker.StateOpen && run.firstOpen < 0 && now >= outageFrom {
					run.firstOpen = now
				}
			}))
		httpbreaker.SetRandom(breaker, rand.New(rand.NewPCG(7, 8)).Float64)
		rt = breaker
	}
	window := func(at time.Duration) int {
		switch {
		case at < outageFrom:
			return -1
		case run.firstOpen < 0 || at < run.firstOpen:
			return 0 // the outage, before the circuit opened
		case at < recoverAt:
			return 1 // the outage, circuit opened
		}
		return 2
	}
	clientRandom := rand.New(rand.NewPCG(9, 10))
	arrivals := rand.New(rand.NewPCG(3, 4))
	var events retryEvents
	nextArrival := time.Duration(0)
	for nextArrival < sc.length || len(events) > 0 {
		var e retryEvent
		if len(events) > 0 && (events[0].at <= nextArrival || nextArrival >= sc.length) {
			e = heap.Pop(&events).(retryEvent)
		} else {
			e = retryEvent{at: nextArrival, call: run.calls}
			run.calls++
			if w := window(nextArrival); w >= 0 {
				run.callsIn[w]++
			}
			nextArrival += time.Duration(arrivals.ExpFloat64() / 100 * float64(time.Second))
		}
		now = e.at
		clock.At(now)
		before := run.attempts
		req := mustRequest(t, http.MethodGet, "http://api.test/")
		resp, err := rt.RoundTrip(req)
		if w := window(now); w >= 0 && run.attempts > before {
			run.attemptsIn[w]++
		}
		ok := err == nil && resp.StatusCode == http.StatusOK
		if resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		if ok {
			run.succeeded++
			if now >= recoverAt && run.recovered < 0 {
				run.recovered = now - recoverAt
			}
			continue
		}
		refused := errors.Is(err, httpbreaker.ErrCircuitOpen) || errors.Is(err, httpbreaker.ErrOverloaded)
		if e.attempt == 3 || refused || c.budget && !breaker.AllowRetry(req) {
			continue
		}
		wait := time.Duration(float64(200*time.Millisecond<<e.attempt) * (0.5 + clientRandom.Float64()))
		heap.Push(&events, retryEvent{at: now + wait, call: e.call, attempt: e.attempt + 1})
	}
	return run
}

// TestRetrySimulation prints the table docs/overload.md quotes and checks
// the goals of #27 that the arithmetic allows (see the 30% column).
func TestRetrySimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short")
	}
	outage := retryScenario{"down 100% from 30s to 90s", 150 * time.Second,
		func(at time.Duration, _ *rand.Rand) bool { return at >= 30*time.Second && at < 90*time.Second }}
	degraded := retryScenario{"30% failing for 10 minutes", 10 * time.Minute,
		func(_ time.Duration, random *rand.Rand) bool { return random.Float64() < 0.3 }}
	var table strings.Builder
	fmt.Fprintf(&table, "%-22s | %-52s | %s\n", "", "(a) "+outage.name, "(b) "+degraded.name)
	fmt.Fprintf(&table, "%-22s | %14s %14s %20s | %13s %10s\n", "client", "ampl. pre-open", "ampl. open", "first success after", "amplification", "succeeded")
	outages := make([]retryRun, len(retryContenders))
	degradeds := make([]retryRun, len(retryContenders))
	for i, c := range retryContenders {
		a := runRetries(t, c, outage, 30*time.Second, 90*time.Second)
		b := runRetries(t, c, degraded, 0, degraded.length)
		outages[i], degradeds[i] = a, b
		ampl := func(w int) string {
			if a.callsIn[w] == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", float64(a.attemptsIn[w])/float64(a.callsIn[w]))
		}
		preOpen := ampl(0)
		if c.policy == nil {
			preOpen = fmt.Sprintf("%.2f (never)", float64(a.attemptsIn[0])/float64(a.callsIn[0]))
		}
		fmt.Fprintf(&table, "%-22s | %14s %14s %20v | %13.2f %9.1f%%\n", c.name, preOpen, ampl(1),
			a.recovered.Round(time.Millisecond), float64(b.attempts)/float64(b.calls), 100*float64(b.succeeded)/float64(b.calls))
	}
	t.Log("one host, 100 calls/s (Poisson), up to 3 retries with backoff 200ms·2^n ×[0.5, 1.5); amplification is attempts reaching the host per call made; " +
		"the breaker: Window 10s, FailureThreshold 10, ResetTimeout 5s\n" + table.String())

	alone, breaker := 0, 1
	assert.Greater(t, float64(outages[alone].attemptsIn[0])/float64(outages[alone].callsIn[0]), 2.0, "retries alone multiply an outage")
	assert.Greater(t, float64(degradeds[alone].attempts)/float64(degradeds[alone].calls), 1.35, "and a degraded host's load")
	for i, c := range retryContenders {
		if !c.budget {
			continue
		}
		a, b := outages[i], degradeds[i]
		assert.LessOrEqual(t, float64(a.attemptsIn[0])/float64(a.callsIn[0]), 1.2, "%s: before the circuit opens", c.name)
		assert.LessOrEqual(t, float64(a.attemptsIn[1])/float64(a.callsIn[1]), 0.05, "%s: once it is open", c.name)
		r := c.policy.RetryBudget
		assert.LessOrEqual(t, float64(b.attempts)/float64(b.calls), 1+r+0.05, "%s: at 30%% failing", c.name)
		// Each attempt succeeds with probability 0.7, so with at most 1+r+0.05
		// attempts per call no client can do better than 0.7·(1+r+0.05).
		assert.GreaterOrEqual(t, float64(b.succeeded)/float64(b.calls), 0.97*0.7*(1+r), "%s: near the bound", c.name)
		assert.Less(t, b.attempts, degradeds[breaker].attempts, "%s: less load than unbudgeted retries", c.name)
	}
	assert.GreaterOrEqual(t, float64(degradeds[len(degradeds)-1].succeeded)/float64(degradeds[len(degradeds)-1].calls), 0.9,
		"r = 0.3: 90% succeed")
}
