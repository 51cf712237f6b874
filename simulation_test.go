package httpbreaker_test

import (
	"container/heap"
	"context"
	"errors"
	"flag"
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

// The overload simulation drives a real Transport with a fake clock, a
// seeded random source and a fake upstream, one event at a time: the same
// input gives the same table on every machine. `make simulate` prints it.
//
// Traffic is a Poisson stream of GETs to one host. A call that takes time
// runs on a goroutine parked in the fake upstream until the simulation's
// clock reaches its end; the driver waits for each call to park or return
// before the next event, so the order of everything is fixed.

// simMinutes is how long scenario (a) runs: 1 minute inside make test, 10
// for the table make simulate prints (trips are rare events: a longer run
// averages them).
var simMinutes = flag.Int("sim.minutes", 1, "minutes of simulated traffic for the half-capacity scenario")

// simSeed moves the simulations' random sources: rerun the tables with a
// few seeds to see how much of a difference between two rows is noise.
var simSeed = flag.Uint64("sim.seed", 0, "added to the simulations' random seeds (0: the tables docs/overload.md quotes)")

// simUpstream is the fake host: what it answers a call arriving at offset at,
// and after how long. A status of 0 is a transport error.
type simUpstream interface {
	answer(at time.Duration) (status int, latency time.Duration)
}

// halfCapacity accepts calls at rate per second (a token bucket holding up
// to burst tokens) and answers the rest 503 at once: offered twice its
// rate, it accepts half.
type halfCapacity struct {
	rate, burst float64
	tokens      float64
	last        time.Duration
}

func (u *halfCapacity) answer(at time.Duration) (int, time.Duration) {
	u.tokens = min(u.burst, u.tokens+(at-u.last).Seconds()*u.rate)
	u.last = at
	if u.tokens >= 1 {
		u.tokens--
		return http.StatusOK, 0
	}
	return http.StatusServiceUnavailable, 0
}

// outage answers 200 at once, except between from and to, when nothing
// listens (a transport error at once).
type outage struct{ from, to time.Duration }

func (u outage) answer(at time.Duration) (int, time.Duration) {
	if at >= u.from && at < u.to {
		return 0, 0
	}
	return http.StatusOK, 0
}

// slowdown answers 200 after 20ms until from; from then on every call
// hangs until the caller's 10s timeout.
type slowdown struct{ from time.Duration }

const callTimeout = 10 * time.Second

func (u slowdown) answer(at time.Duration) (int, time.Duration) {
	if at >= u.from {
		return 0, callTimeout
	}
	return http.StatusOK, 20 * time.Millisecond
}

// simResult is what one run measured.
type simResult struct {
	calls, sent, succeeded       int
	refusedOpen, refusedOverload int
	maxParked                    int
	// sentBetween counts calls sent upstream in [from, to) of the
	// scenario's window of interest; lastRefusal is the offset of the
	// latest refusal at or after from.
	sentBetween int
	lastRefusal time.Duration
	// byCriticality splits calls and successes: [0] sheddable, [1] the rest.
	byCriticality [2]struct{ calls, succeeded int }
}

// simOptions are a run's extras: every sheddableEvery-th call Sheddable
// (0: none), and observe, if set, called at each arrival. pool, when set,
// replaces the open-loop arrivals (rate is then unused) with pool callers
// in a closed loop, as a worker pool is: each sends its next call when its
// last one is answered, or pause after one refused or answered at once.
// others, when set with background, are other clients' callers in a
// closed loop on the same host until othersUntil: each sends its next call
// through background (not the Transport) when its last is answered.
type simOptions struct {
	sheddableEvery int
	observe        func(at time.Duration, rt *httpbreaker.Transport)
	pool           int
	pause          time.Duration
	others         int
	othersUntil    time.Duration
	background     func(at time.Duration) (status int, latency time.Duration)
}

type simCall struct {
	end     time.Duration
	release chan struct{}
	done    chan struct{}
}

type simQueue []*simCall

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].end < q[j].end }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(*simCall)) }
func (q *simQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

// simulate offers rate calls per second for length to up through a
// Transport with policy, and measures; window is the span whose sent calls
// and last refusal are reported.
func simulate(t *testing.T, policy httpbreaker.Policy, up simUpstream, rate float64, length, from, to time.Duration, opts ...simOptions) simResult {
	t.Helper()
	var o simOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	clock := newClock()
	var res simResult
	parked := make(chan *simCall)
	var queue simQueue
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		at := clock.Now().Sub(t0)
		res.sent++
		if at >= from && at < to {
			res.sentBetween++
		}
		status, latency := up.answer(at)
		if latency > 0 {
			c := &simCall{end: at + latency, release: make(chan struct{})}
			parked <- c
			<-c.release
		}
		if status == 0 {
			if latency > 0 {
				return nil, context.DeadlineExceeded
			}
			return nil, errors.New("connection refused")
		}
		return response(req, status, "ok"), nil
	})
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	random := rand.New(rand.NewPCG(1+*simSeed, 2))
	httpbreaker.SetRandom(rt, random.Float64)
	arrivals := rand.New(rand.NewPCG(3+*simSeed, 4))

	// call runs one call on its own goroutine and returns once it has
	// parked in the upstream (then the call is returned) or finished.
	call := func(at time.Duration) *simCall {
		finished := make(chan struct{})
		class := 1
		if o.sheddableEvery > 0 && res.calls%o.sheddableEvery == 0 {
			class = 0
		}
		go func() {
			defer close(finished)
			req := mustRequest(t, http.MethodGet, "http://api.test/")
			if class == 0 {
				req = req.WithContext(httpbreaker.WithCriticality(req.Context(), httpbreaker.Sheddable))
			}
			res.byCriticality[class].calls++
			resp, err := rt.RoundTrip(req)
			switch {
			case errors.Is(err, httpbreaker.ErrCircuitOpen):
				res.refusedOpen++
				if at >= from {
					res.lastRefusal = at
				}
			case errors.Is(err, httpbreaker.ErrOverloaded):
				res.refusedOverload++
				if at >= from {
					res.lastRefusal = at
				}
			case err == nil:
				if resp.StatusCode == http.StatusOK {
					res.succeeded++
					res.byCriticality[class].succeeded++
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
		select {
		case c := <-parked:
			c.done = finished
			return c
		case <-finished:
			return nil
		}
	}
	next := time.Duration(0)
	var ready simQueue // under a pool: when each idle caller sends its next call
	for range o.pool {
		heap.Push(&ready, &simCall{})
	}
	arrival := func() time.Duration {
		switch {
		case o.pool == 0:
			return next
		case len(ready) == 0: // every caller waits for an answer
			return length
		}
		return ready[0].end
	}
	var others simQueue // other clients' callers: when each sends its next call
	for range o.others {
		heap.Push(&others, &simCall{})
	}
	for at := arrival(); at < length || len(queue) > 0; at = arrival() {
		if len(others) > 0 && others[0].end < o.othersUntil && others[0].end <= at &&
			(len(queue) == 0 || others[0].end < queue[0].end) {
			c := heap.Pop(&others).(*simCall)
			status, latency := o.background(c.end)
			if status != http.StatusOK {
				latency = o.pause
			}
			heap.Push(&others, &simCall{end: c.end + latency})
			continue
		}
		if len(queue) > 0 && (queue[0].end <= at || at >= length) {
			c := heap.Pop(&queue).(*simCall)
			clock.At(c.end)
			close(c.release)
			<-c.done
			if o.pool > 0 {
				heap.Push(&ready, &simCall{end: c.end})
			}
			continue
		}
		clock.At(at)
		if o.observe != nil {
			o.observe(at, rt)
		}
		res.calls++
		if o.pool > 0 {
			heap.Pop(&ready)
		}
		if c := call(at); c != nil {
			heap.Push(&queue, c)
			res.maxParked = max(res.maxParked, len(queue))
		} else if o.pool > 0 {
			heap.Push(&ready, &simCall{end: at + o.pause})
		}
		if o.pool == 0 {
			next += time.Duration(arrivals.ExpFloat64() / rate * float64(time.Second))
		}
	}
	return res
}

// simPolicies are the rows of the table: the two binary breakers, and
// throttling beside the same consecutive rule (FailureThreshold 5), every
// one opening for 5s.
var simPolicies = []struct {
	name   string
	policy httpbreaker.Policy
}{
	{"consecutive failures (5)", httpbreaker.Policy{ResetTimeout: 5 * time.Second}},
	{"failure rate (10s, 50%)", httpbreaker.Policy{ResetTimeout: 5 * time.Second, Window: 10 * time.Second}},
	{"throttle K=2, FailureRatio 0.9", httpbreaker.Policy{ResetTimeout: 5 * time.Second, Window: 10 * time.Second, Throttle: 2, FailureRatio: 0.9}},
	{"throttle K=1.5", httpbreaker.Policy{ResetTimeout: 5 * time.Second, Window: 10 * time.Second, Throttle: 1.5}},
	{"throttle K=1.1", httpbreaker.Policy{ResetTimeout: 5 * time.Second, Window: 10 * time.Second, Throttle: 1.1}},
	{"throttle K=1.1, MaxConcurrent 50", httpbreaker.Policy{ResetTimeout: 5 * time.Second, Window: 10 * time.Second, Throttle: 1.1, MaxConcurrent: 50}},
}

// TestOverloadSimulation prints the table docs/overload.md quotes, and checks what
// it must show: under partial overload throttling delivers more goodput
// than either binary breaker, in an outage it sends no more upstream, and
// the concurrency cap bounds the goroutines a slow host holds.
func TestOverloadSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short")
	}
	const rate = 200.0 // calls offered per second
	var half, down, slow []simResult
	length := time.Duration(*simMinutes) * time.Minute
	secs := length.Seconds()
	for _, p := range simPolicies {
		half = append(half, simulate(t, p.policy, &halfCapacity{rate: 100, burst: 10, tokens: 10}, rate, length, 0, length))
		down = append(down, simulate(t, p.policy, outage{30 * time.Second, 90 * time.Second}, rate, 2*time.Minute, 30*time.Second, 90*time.Second))
		slow = append(slow, simulate(t, p.policy, slowdown{10 * time.Second}, rate, time.Minute, 10*time.Second, time.Minute))
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-34s | %-33s | %-28s | %s\n", "", fmt.Sprintf("(a) half capacity, %v", length), "(b) outage 30s-90s", "(c) hangs from 10s, 60s")
	fmt.Fprintf(&table, "%-34s | %9s %11s %11s | %12s %15s | %12s %12s\n", "policy",
		"goodput/s", "sent up/s", "rejected/s", "sent in it", "to full traffic", "max parked", "sent in it")
	for i, p := range simPolicies {
		a, b, c := half[i], down[i], slow[i]
		fmt.Fprintf(&table, "%-34s | %9.1f %11.1f %11.1f | %12d %15v | %12d %12d\n", p.name,
			float64(a.succeeded)/secs, float64(a.sent)/secs, float64(a.sent-a.succeeded)/secs,
			b.sentBetween, max(0, b.lastRefusal-90*time.Second).Round(time.Millisecond),
			c.maxParked, c.sentBetween)
	}
	t.Log("200 calls/s offered to one host; every policy opens for 5s\n" + table.String())

	consecutive, rateRule := 0, 1
	for i, p := range simPolicies {
		if i == consecutive || i == rateRule {
			continue
		}
		assert.LessOrEqual(t, down[i].sentBetween, min(down[consecutive].sentBetween, down[rateRule].sentBetween),
			"%s: no more upstream in an outage than a binary breaker", p.name)
		if p.policy.MaxConcurrent > 0 {
			assert.LessOrEqual(t, slow[i].maxParked, p.policy.MaxConcurrent, "%s: parked goroutines", p.name)
		}
	}
	best := len(simPolicies) - 2 // K = 1.1
	assert.Greater(t, half[best].succeeded, 3*max(half[consecutive].succeeded, half[rateRule].succeeded),
		"throttling's goodput under partial overload")
	assert.Greater(t, slow[consecutive].maxParked, 1000, "a binary breaker holds a goroutine per call until timeouts trip it")
}

// TestCriticalitySimulation runs the half-capacity host with half the
// calls Sheddable: when the host is overloaded, critical calls get more of
// its capacity.
func TestCriticalitySimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short")
	}
	policy := httpbreaker.Policy{ResetTimeout: 5 * time.Second, Window: 10 * time.Second, Throttle: 1.1}
	r := simulate(t, policy, &halfCapacity{rate: 100, burst: 10, tokens: 10}, 200, time.Minute, 0, time.Minute, simOptions{sheddableEvery: 2})
	t.Logf("half sheddable, throttle K=1.1: critical %d of %d succeeded (%.0f%%), sheddable %d of %d (%.0f%%)",
		r.byCriticality[1].succeeded, r.byCriticality[1].calls, 100*float64(r.byCriticality[1].succeeded)/float64(r.byCriticality[1].calls),
		r.byCriticality[0].succeeded, r.byCriticality[0].calls, 100*float64(r.byCriticality[0].succeeded)/float64(r.byCriticality[0].calls))
	critical := float64(r.byCriticality[1].succeeded) / float64(r.byCriticality[1].calls)
	sheddable := float64(r.byCriticality[0].succeeded) / float64(r.byCriticality[0].calls)
	assert.Greater(t, critical, sheddable+0.1, "critical calls succeed more often")
}
