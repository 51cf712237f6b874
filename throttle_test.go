package httpbreaker_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// throttlePolicy throttles with K = 1 (p = failures / (requests + 1)) from
// the first call, a rate rule that trips only when every call in the window
// failed, and a consecutive rule out of the way, so each test sets p by the
// calls it makes (with a success among them).
var throttlePolicy = httpbreaker.Policy{
	Window: 10 * time.Second, Throttle: 1, FailureRatio: 1, MinimumRequests: 1, FailureThreshold: 1000,
}

// scripted is a base transport whose answers a test sets: status 0 is a
// transport error.
type scripted struct {
	status atomic.Int64
	calls  atomic.Int64
}

func newScripted() *scripted {
	s := &scripted{}
	s.status.Store(http.StatusOK)
	return s
}

func (s *scripted) RoundTrip(req *http.Request) (*http.Response, error) {
	s.calls.Add(1)
	if code := int(s.status.Load()); code != 0 {
		return response(req, code, "body"), nil
	}
	return nil, errors.New("connection refused")
}

// primeThrottle sends successes and then failures through rt, letting all
// of them through whatever the throttle says.
func primeThrottle(t *testing.T, rt *httpbreaker.Transport, base *scripted, successes, failures int) {
	t.Helper()
	httpbreaker.SetRandom(rt, func() float64 { return 1 }) // p ≤ MaxThrottle < 1: never refused
	base.status.Store(http.StatusOK)
	for range successes {
		_, err := get(t, rt, host+"/")
		require.NoError(t, err)
	}
	base.status.Store(http.StatusServiceUnavailable)
	for range failures {
		_, err := get(t, rt, host+"/")
		require.NoError(t, err)
	}
}

func TestThrottleRefusesWithTheBooksProbability(t *testing.T) {
	clock := newClock()
	base := newScripted()
	policy := throttlePolicy
	policy.Throttle = 1.5
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	primeThrottle(t, rt, base, 20, 20)
	// requests 40, accepts 20: p = (40 − 1.5·20) / 41.
	p := (40 - 1.5*20) / 41.0
	assert.InDelta(t, p, rt.Status(host).Throttle, 1e-9)

	sent := base.calls.Load()
	httpbreaker.SetRandom(rt, func() float64 { return p + 1e-6 })
	_, err := get(t, rt, host+"/")
	require.NoError(t, err, "a draw above p passes")
	assert.Equal(t, sent+1, base.calls.Load())

	// That call failed: requests 41. A draw just under the new p refuses.
	p = (41 - 1.5*20) / 42.0
	httpbreaker.SetRandom(rt, func() float64 { return p - 1e-6 })
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	assert.NotErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	var overload *httpbreaker.OverloadError
	require.ErrorAs(t, err, &overload)
	assert.Equal(t, "api.test", overload.Host)
	assert.True(t, overload.Throttled)
	assert.Equal(t, sent+1, base.calls.Load(), "a throttled call is not sent")

	st := rt.Status(host)
	assert.Equal(t, httpbreaker.StateClosed, st.State)
	assert.Equal(t, uint64(1), st.Total.Rejected)
	assert.Equal(t, uint64(1), st.Total.Shed)
	assert.True(t, st.Shedding)
	assert.Equal(t, 21, st.ConsecutiveFailures, "a refusal is not a failure")
	// The refusal counts as a request: requests 42, accepts 20.
	assert.InDelta(t, (42-1.5*20)/43.0, st.Throttle, 1e-9)
}

func TestThrottleFadesAsAcceptsReturnAndWithTime(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy))
	primeThrottle(t, rt, base, 1, 30)
	assert.InDelta(t, 0.9, rt.Status(host).Throttle, 1e-9, "capped at MaxThrottle's default")

	// Accepts bring it down, call by call, with no timeout to wait out.
	primeThrottle(t, rt, base, 30, 0)
	assert.InDelta(t, 30/62.0, rt.Status(host).Throttle, 1e-9)

	// The window forgets: a Window later the throttle is off, and even a
	// draw of 0 passes.
	clock.At(10*time.Second + time.Second)
	assert.Zero(t, rt.Status(host).Throttle)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	base.status.Store(http.StatusOK)
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
}

func TestMaxThrottleCapsTheProbability(t *testing.T) {
	clock := newClock()
	base := newScripted()
	policy := throttlePolicy
	policy.MaxThrottle = 0.5
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	primeThrottle(t, rt, base, 1, 50)
	assert.InDelta(t, 0.5, rt.Status(host).Throttle, 1e-9)
	httpbreaker.SetRandom(rt, func() float64 { return 0.5 })
	_, err := get(t, rt, host+"/")
	require.NoError(t, err, "a draw at the cap passes")
	httpbreaker.SetRandom(rt, func() float64 { return 0.4999 })
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
}

// Criticality shares the throttle's refusals out, lowest first. After the
// priming, p = 10/40 and the throttle has counted 9 Critical attempts (the
// calls after the first failure, while p > 0); the call under test adds its
// own.
func TestCriticalitySharesRefusalsOutLowestFirst(t *testing.T) {
	const p = 10 / 40.0 // 29 successes, 10 failures, K = 1
	tests := []struct {
		name    string
		ctx     func(context.Context) context.Context
		draw    float64
		refused bool
	}{
		// Critical alone: q = p·N/n_C = p.
		{"no criticality", func(ctx context.Context) context.Context { return ctx }, p - 0.001, true},
		{"no criticality", func(ctx context.Context) context.Context { return ctx }, p + 0.001, false},
		{"critical", with(httpbreaker.Critical), p - 0.001, true},
		{"critical", with(httpbreaker.Critical), p + 0.001, false},
		{"unknown value", with(httpbreaker.Criticality(7)), p - 0.001, true},
		{"unknown value", with(httpbreaker.Criticality(7)), p + 0.001, false},
		// One sheddable call among 10: the 2.5 refusals due cover it.
		{"sheddable", with(httpbreaker.Sheddable), 0.999, true},
		// One critical-plus call among 10: the 9 critical ones take them.
		{"critical-plus", with(httpbreaker.CriticalPlus), 0, false},
	}
	for _, tt := range tests {
		clock := newClock()
		base := newScripted()
		rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy))
		primeThrottle(t, rt, base, 29, 10)
		require.InDelta(t, p, rt.Status(host).Throttle, 1e-9)
		httpbreaker.SetRandom(rt, func() float64 { return tt.draw })
		req := mustRequest(t, http.MethodGet, host+"/")
		_, err := oneResult(t, rt, req.WithContext(tt.ctx(req.Context())))
		if tt.refused {
			assert.ErrorIs(t, err, httpbreaker.ErrOverloaded, "%s, draw %v", tt.name, tt.draw)
		} else {
			assert.NoError(t, err, "%s, draw %v", tt.name, tt.draw)
		}
	}
}

// A level alone gets the throttle's share, whatever its criticality: the
// host sees the same share refused.
func TestLoneCriticalityGetsTheWholeShare(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy))
	httpbreaker.SetRandom(rt, func() float64 { return 1 })
	plus := func() *http.Request {
		req := mustRequest(t, http.MethodGet, host+"/")
		return req.WithContext(httpbreaker.WithCriticality(req.Context(), httpbreaker.CriticalPlus))
	}
	_, err := oneResult(t, rt, plus())
	require.NoError(t, err)
	base.status.Store(http.StatusServiceUnavailable)
	for range 20 {
		_, err := oneResult(t, rt, plus())
		require.NoError(t, err)
	}
	require.InDelta(t, 0.9, rt.Status(host).Throttle, 1e-9)
	httpbreaker.SetRandom(rt, func() float64 { return 0.899 })
	_, err = oneResult(t, rt, plus())
	assert.ErrorIs(t, err, httpbreaker.ErrOverloaded, "critical-plus alone is refused with p")
	httpbreaker.SetRandom(rt, func() float64 { return 0.901 })
	_, err = oneResult(t, rt, plus())
	assert.NoError(t, err)
}

func with(c httpbreaker.Criticality) func(context.Context) context.Context {
	return func(ctx context.Context) context.Context { return httpbreaker.WithCriticality(ctx, c) }
}

func TestCriticalityFrom(t *testing.T) {
	ctx := context.Background()
	assert.Equal(t, httpbreaker.Critical, httpbreaker.CriticalityFrom(ctx))
	for _, c := range []httpbreaker.Criticality{httpbreaker.Sheddable, httpbreaker.Critical, httpbreaker.CriticalPlus} {
		assert.Equal(t, c, httpbreaker.CriticalityFrom(httpbreaker.WithCriticality(ctx, c)))
	}
	assert.Equal(t, httpbreaker.Critical, httpbreaker.CriticalityFrom(httpbreaker.WithCriticality(ctx, -5)))
	keyed := httpbreaker.WithCriticality(httpbreaker.WithKey(ctx, "tenant-a"), httpbreaker.Sheddable)
	assert.Equal(t, httpbreaker.Sheddable, httpbreaker.CriticalityFrom(keyed), "controls combine")
	assert.Equal(t, "sheddable critical critical-plus",
		httpbreaker.Sheddable.String()+" "+httpbreaker.Critical.String()+" "+httpbreaker.CriticalPlus.String())
}

// The breaker's rules still open the circuit under throttling, throttled
// refusals are not failures, and the throttle keeps its window across the
// open period (a good probe does not end an overload); ClearState empties it.
func TestThrottleLeavesTheBreakerRulesInPlace(t *testing.T) {
	clock := newClock()
	base := newScripted()
	policy := throttlePolicy
	policy.FailureThreshold = 5
	policy.ResetTimeout = 2 * time.Second
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	primeThrottle(t, rt, base, 10, 4)
	require.True(t, rt.IsClosed(host))
	httpbreaker.SetRandom(rt, func() float64 { return 0 }) // every draw refuses while p > 0
	for range 3 {
		_, err := get(t, rt, host+"/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	}
	assert.Equal(t, 4, rt.Status(host).ConsecutiveFailures)
	httpbreaker.SetRandom(rt, func() float64 { return 1 })
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	require.True(t, rt.IsOpen(host), "the fifth failure in a row opens the circuit")
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "an open circuit refuses as before")
	assert.Zero(t, rt.Status(host).Throttle, "no throttle while open")

	clock.At(3 * time.Second)
	base.status.Store(http.StatusOK)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	_, err = get(t, rt, host+"/")
	require.NoError(t, err, "the probe is never throttled")
	require.True(t, rt.IsClosed(host))
	// 10 accepts; 5 failures and 3 refusals; the probe is not counted.
	assert.InDelta(t, (18-10)/19.0, rt.Status(host).Throttle, 1e-9, "the throttle resumes where it was")
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)

	rt.ClearState(host)
	assert.Zero(t, rt.Status(host).Throttle, "ClearState empties the throttle")
	_, err = get(t, rt, host+"/")
	require.NoError(t, err)
}

// Throttle on and a healthy host: no allocation, and no refusal whatever
// the draws say.
func TestHealthyHostIsNeverThrottled(t *testing.T) {
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Second, Throttle: 1}))
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	for range 1000 {
		_, err := get(t, rt, host+"/")
		require.NoError(t, err)
	}
	assert.Zero(t, rt.Status(host).Total.Shed)
}

// A quiet host is not throttled for one failure: the throttle waits, like
// the rate rule, for MinimumRequests calls in its window. (The book's
// formula alone gives p = 1/2 after a single failure in an empty window,
// and its refusals then count as requests.)
func TestQuietHostIsNotThrottledBelowMinimumRequests(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Minute, Throttle: 1.1}))
	httpbreaker.SetRandom(rt, func() float64 { return 0 }) // any p > 0 refuses
	base.status.Store(http.StatusServiceUnavailable)
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	base.status.Store(http.StatusOK)
	for i := range 5 {
		clock.At(time.Duration(i+1) * 5 * time.Second)
		_, err := get(t, rt, host+"/")
		require.NoError(t, err, "call %d: one failure among a handful of calls refuses nothing", i)
	}
	assert.Zero(t, rt.Status(host).Throttle)
}
