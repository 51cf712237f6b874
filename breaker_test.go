package httpbreaker_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// step is one request at one instant: the upstream answers status (0: a
// transport error); sent says whether the request must reach it; then the
// circuit must be in state.
type step struct {
	at     time.Duration
	status int
	sent   bool
	state  httpbreaker.State
}

func runSteps(t *testing.T, policy httpbreaker.Policy, steps []step) {
	t.Helper()
	clock := newClock()
	var status atomic.Int64
	base := statusFor(&status)
	rt := newTransport(t, base, httpbreaker.WithPolicy(policy), httpbreaker.WithClock(clock.Now))
	for i, s := range steps {
		clock.At(s.at)
		status.Store(int64(s.status))
		before := base.calls.Load()
		body := newBody("order")
		req, err := http.NewRequest(http.MethodPost, host+"/menu", body)
		require.NoError(t, err)
		resp, err := rt.RoundTrip(req)
		sent := base.calls.Load() > before
		assert.Equal(t, s.sent, sent, "step %d at %v: sent", i, s.at)
		assert.True(t, body.closed.Load(), "step %d: request body not closed", i)
		switch {
		case !sent:
			var open *httpbreaker.OpenError
			require.ErrorAs(t, err, &open, "step %d", i)
			assert.Nil(t, resp)
		case s.status == 0:
			assert.ErrorIs(t, err, errUpstream, "step %d", i)
		default:
			require.NoError(t, err, "step %d", i)
			assert.Equal(t, s.status, resp.StatusCode, "step %d: the caller gets its own response", i)
			_ = resp.Body.Close()
		}
		assert.Equal(t, s.state, rt.State(host), "step %d at %v", i, s.at)
	}
}

func TestStateMachine(t *testing.T) {
	s := time.Second
	tests := []struct {
		name   string
		policy httpbreaker.Policy
		steps  []step
	}{
		{
			name:   "defaults: five failures open, a probe after 60s closes",
			policy: httpbreaker.Policy{},
			steps: []step{
				{0, 500, true, closed},
				{0, 0, true, closed},
				{1 * s, 503, true, closed},
				{2 * s, 404, true, closed},
				{3 * s, 500, true, open}, // the fifth: it trips and gets its own 500
				{3 * s, 200, false, open},
				{62 * s, 200, false, open},
				{63 * s, 200, true, closed},
				{63 * s, 500, true, closed},
			},
		},
		{
			name:   "a success resets the consecutive count",
			policy: httpbreaker.Policy{FailureThreshold: 3},
			steps: []step{
				{0, 500, true, closed},
				{0, 500, true, closed},
				{0, 200, true, closed},
				{0, 500, true, closed},
				{0, 500, true, closed},
				{0, 500, true, open},
			},
		},
		{
			name:   "a failed probe reopens for a fresh timeout",
			policy: httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: 10 * s},
			steps: []step{
				{0, 500, true, closed},
				{1 * s, 500, true, open},
				{10 * s, 200, false, open},
				{11 * s, 500, true, open}, // the probe fails at 11s: open until 21s
				{20 * s, 200, false, open},
				{21*s - 1, 200, false, open},
				{21 * s, 0, true, open}, // a transport error fails the probe too
				{31 * s, 200, true, closed},
			},
		},
		{
			name:   "success threshold above the probe limit: probes in turns",
			policy: httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: 5 * s, SuccessThreshold: 3},
			steps: []step{
				{0, 500, true, open},
				{5 * s, 200, true, halfOpen},
				{5 * s, 200, true, halfOpen},
				{6 * s, 200, true, closed},
			},
		},
		{
			name:   "a probe failure after successes reopens",
			policy: httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: 5 * s, SuccessThreshold: 2},
			steps: []step{
				{0, 500, true, open},
				{5 * s, 200, true, halfOpen},
				{5 * s, 502, true, open},
				{9 * s, 200, false, open},
				{10 * s, 200, true, halfOpen},
				{10 * s, 200, true, closed},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, tt.policy, tt.steps) })
	}
}

func TestStateTurnsHalfOpenWhenTheTimeoutPasses(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	status.Store(500)
	log := &transitionLog{}
	rt := newTransport(t, statusFor(&status),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}),
		httpbreaker.WithClock(clock.Now), httpbreaker.WithOnStateChange(log.listen))

	_, _ = get(t, rt, host)
	for _, tc := range []struct {
		at   time.Duration
		want httpbreaker.State
	}{
		{0, open}, {59 * time.Second, open}, {time.Minute, halfOpen}, {2 * time.Minute, halfOpen},
	} {
		clock.At(tc.at)
		assert.Equal(t, tc.want, rt.State(host), "at %v", tc.at)
		assert.Equal(t, tc.want == open, rt.IsOpen(host))
		assert.Equal(t, tc.want == halfOpen, rt.IsHalfOpen(host))
		assert.False(t, rt.IsClosed(host))
	}
	assert.Equal(t, []string{"api.test: closed -> open", "api.test: open -> half-open"}, log.get())
}

func TestOpenErrorDescribesTheRefusal(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return 500 }),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: 30 * time.Second}),
		httpbreaker.WithClock(clock.Now))
	client := &http.Client{Transport: rt}

	for range 2 {
		resp, err := client.Get("https://API.test:443/menu")
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	clock.At(10 * time.Second)
	_, err := client.Get("https://api.test/other")
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "through http.Client's *url.Error")
	assert.NotErrorIs(t, err, httpbreaker.ErrInvalidMethod)
	var open *httpbreaker.OpenError
	require.ErrorAs(t, err, &open)
	assert.Equal(t, "api.test", open.Host)
	assert.Equal(t, httpbreaker.StateOpen, open.State)
	assert.Equal(t, t0.Add(30*time.Second), open.RetryAt)
	assert.Contains(t, err.Error(), `circuit open for "api.test"`)
}

func TestHalfOpenAdmitsAtMostMaxProbesAtOnce(t *testing.T) {
	const maxProbes, callers = 3, 12
	clock := newClock()
	failing := true
	g := newGate(200)
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing {
			return response(req, 500, ""), nil
		}
		return g.RoundTrip(req)
	})
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 1, ResetTimeout: time.Second, HalfOpenMaxRequests: maxProbes, SuccessThreshold: maxProbes,
	}))
	_, _ = get(t, rt, host)
	require.Equal(t, open, rt.State(host))
	failing = false
	clock.At(time.Second)

	type result struct {
		status int
		err    error
	}
	results := make(chan result, callers)
	for range callers {
		go func() {
			status, err := get(t, rt, host)
			results <- result{status, err}
		}()
	}
	// The refused callers return at once; the probes wait in the gate.
	for range callers - maxProbes {
		r := <-results
		var open *httpbreaker.OpenError
		require.ErrorAs(t, r.err, &open)
		assert.Equal(t, halfOpen, open.State)
		assert.Equal(t, t0.Add(time.Second), open.RetryAt)
	}
	for range maxProbes {
		<-g.entered
	}
	assert.Equal(t, int64(maxProbes), g.maxSeen.Load())
	assert.Equal(t, halfOpen, rt.State(host))
	close(g.release)
	for range maxProbes {
		r := <-results
		require.NoError(t, r.err)
		assert.Equal(t, 200, r.status)
	}
	assert.Equal(t, closed, rt.State(host))
}

func TestIgnoredProbeFreesItsSlot(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	status.Store(500)
	canceled := false
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if canceled {
			return nil, context.Canceled
		}
		return response(req, int(status.Load()), ""), nil
	})
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second}))
	_, _ = get(t, rt, host)
	clock.At(time.Second)

	canceled = true
	_, err := get(t, rt, host)
	require.ErrorIs(t, err, context.Canceled, "the probe was sent and its error returned")
	assert.Equal(t, halfOpen, rt.State(host), "an ignored probe neither closes nor reopens")

	canceled = false
	status.Store(200)
	code, err := get(t, rt, host)
	require.NoError(t, err, "the slot was freed for the next probe")
	assert.Equal(t, 200, code)
	assert.Equal(t, closed, rt.State(host))
}

func TestLateResultsDoNotCorruptANewerState(t *testing.T) {
	for _, late := range []struct {
		name   string
		status int
	}{{"late failure", 500}, {"late success", 200}} {
		t.Run(late.name, func(t *testing.T) {
			clock := newClock()
			slow := newGate(late.status)
			var fast atomic.Int64
			fast.Store(500)
			base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.URL.Path == "/slow" {
					return slow.RoundTrip(req)
				}
				return response(req, int(fast.Load()), ""), nil
			})
			rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(
				httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Second, SuccessThreshold: 2}))

			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = get(t, rt, host+"/slow") // admitted while closed
			}()
			<-slow.entered
			_, _ = get(t, rt, host+"/fast")
			_, _ = get(t, rt, host+"/fast")
			clock.At(time.Second)
			fast.Store(200)
			_, err := get(t, rt, host+"/fast") // first probe succeeds: 1 of 2
			require.NoError(t, err)
			require.Equal(t, halfOpen, rt.State(host))

			close(slow.release)
			<-done
			assert.Equal(t, halfOpen, rt.State(host), "the late result must not count in half-open")
			fast.Store(500)
			_, err = get(t, rt, host+"/fast")
			require.NoError(t, err, "the probe slot is still free")
			assert.Equal(t, open, rt.State(host))
		})
	}
}

func TestLateFailureAfterClearStateIsDropped(t *testing.T) {
	slow := newGate(500)
	var fast atomic.Int64
	fast.Store(500)
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Path == "/slow" {
			return slow.RoundTrip(req)
		}
		return response(req, int(fast.Load()), ""), nil
	})
	rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = get(t, rt, host+"/slow")
	}()
	<-slow.entered
	_, _ = get(t, rt, host+"/fast")
	rt.ClearState(host)
	close(slow.release)
	<-done
	_, _ = get(t, rt, host+"/fast")
	assert.Equal(t, closed, rt.State(host), "one failure since the clear: the late one must not count")
	_, _ = get(t, rt, host+"/fast")
	assert.Equal(t, open, rt.State(host))
}

func TestClearStateClosesAndResetsCounts(t *testing.T) {
	clock := newClock()
	log := &transitionLog{}
	rt := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}), httpbreaker.WithOnStateChange(log.listen))

	rt.ClearState(host) // unknown host: nothing happens
	_, _ = get(t, rt, host)
	rt.ClearState("API.test") // closed: counts reset, no transition
	_, _ = get(t, rt, host)
	assert.Equal(t, closed, rt.State(host))
	_, _ = get(t, rt, host)
	require.Equal(t, open, rt.State(host))
	rt.ClearState("http://api.test/anything")
	assert.Equal(t, closed, rt.State(host))
	assert.Equal(t, []string{"api.test: closed -> open", "api.test: open -> closed"}, log.get())
}

func TestConcurrentTrafficKeepsTheStateMachineConsistent(t *testing.T) {
	clock := newClock()
	var calls atomic.Int64
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if calls.Add(1)%3 == 0 {
			return response(req, 200, ""), nil
		}
		return nil, errors.New("boom")
	})
	var mu sync.Mutex
	last := map[string]httpbreaker.State{}
	var broken atomic.Int64
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Millisecond, HalfOpenMaxRequests: 2}),
		httpbreaker.WithOnStateChange(func(h string, from, to httpbreaker.State) {
			mu.Lock()
			defer mu.Unlock()
			if last[h] != from || from == to {
				broken.Add(1)
			}
			last[h] = to
		}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if g == 0 && i%50 == 0 {
					clock.At(time.Duration(i) * time.Millisecond)
				}
				if g == 1 && i%97 == 0 {
					rt.ClearState(host)
				}
				_, _ = get(t, rt, host)
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, broken.Load(), "each transition starts where the previous one ended")
	state := rt.State(host)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, last["api.test"], state)
}

func TestLateProbeResultAfterClearStateIsDropped(t *testing.T) {
	clock := newClock()
	probe := newGate(500)
	failing := true
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing {
			return response(req, 500, ""), nil
		}
		return probe.RoundTrip(req)
	})
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second}))
	_, _ = get(t, rt, host)
	clock.At(time.Second)
	failing = false
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = get(t, rt, host) // the probe, failing late
	}()
	<-probe.entered
	rt.ClearState(host)
	close(probe.release)
	<-done
	assert.Equal(t, closed, rt.State(host), "a probe of a cleared episode must not reopen the circuit")
}

// A probe from an earlier half-open period still counts: the server never
// sees more than HalfOpenMaxRequests probes at once.
func TestProbesInFlightCountAcrossHalfOpenPeriods(t *testing.T) {
	clock := newClock()
	var failing atomic.Bool
	failing.Store(true)
	held := newGate(200)
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing.Load() || req.URL.Path == "/fail" {
			return response(req, 500, ""), nil
		}
		return held.RoundTrip(req)
	})
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 1, ResetTimeout: time.Second, HalfOpenMaxRequests: 2,
	}))
	_, _ = get(t, rt, host)
	failing.Store(false)
	clock.At(time.Second)
	var probes sync.WaitGroup
	probe := func() {
		probes.Add(1)
		go func() { defer probes.Done(); _, _ = get(t, rt, host+"/held") }()
		<-held.entered
	}
	probe()                            // the first period's first probe, held at the server
	_, err := get(t, rt, host+"/fail") // its second fails: open again
	require.NoError(t, err)
	require.Equal(t, httpbreaker.StateOpen, rt.State(host))

	clock.At(2 * time.Second) // the second period: one probe is still out
	probe()
	third := make(chan error, 1)
	go func() { _, err := get(t, rt, host+"/held"); third <- err }()
	select {
	case err = <-third:
		assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "probes busy")
	case <-held.entered:
		t.Error("a third probe reached the server beside two others")
		defer func() { <-third }()
	}
	assert.Equal(t, int64(2), held.maxSeen.Load())
	close(held.release)
	probes.Wait()
	assert.Equal(t, httpbreaker.StateClosed, rt.State(host))
}
