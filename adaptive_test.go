package httpbreaker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// The adaptive limit through RoundTrip: what it refuses and how, what it
// learns from and what it ignores. Its rules, fed answers directly, are in
// adaptive_internal_test.go; its effect on a host with a capacity knee is
// TestConcurrencySimulation.

var adaptive = httpbreaker.Policy{AdaptiveConcurrency: true, FailureThreshold: 1}

// timeEveryCall makes rt's adaptive limit time every call, not a share
// drawn at random, so that ten calls make a window.
func timeEveryCall(rt *httpbreaker.Transport) *httpbreaker.Transport {
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	return rt
}

// answerIn returns a base that answers 200 after moving clock on by d.
func answerIn(clock *fakeClock, d time.Duration) roundTripFunc {
	return func(req *http.Request) (*http.Response, error) {
		clock.Advance(d)
		return response(req, http.StatusOK, "ok"), nil
	}
}

// learnLimitOfTwo sends ten calls one after another: the first window of
// answers, one call in flight each, moves the limit from its ceiling to
// twice that.
func learnLimitOfTwo(t *testing.T, rt *httpbreaker.Transport, url string) {
	t.Helper()
	for range 10 {
		code, err := get(t, rt, url)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, 2, rt.Status(url).Limit)
}

// limitOfTwoThenGate returns a Transport (with opts) for api.test whose
// adaptive limit learned 2 from ten answers of 10ms, and whose calls from
// then on wait at g until it opens.
func limitOfTwoThenGate(t *testing.T, opts ...httpbreaker.Option) (*httpbreaker.Transport, *gate) {
	t.Helper()
	clock := newClock()
	g := newGate(http.StatusOK)
	learning := true
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if learning {
			return answerIn(clock, 10*time.Millisecond)(req)
		}
		return g.RoundTrip(req)
	})
	opts = append(opts, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(adaptive))
	rt := timeEveryCall(newTransport(t, base, opts...))
	learnLimitOfTwo(t, rt, "http://api.test/")
	learning = false
	return rt, g
}

func TestAdaptiveLimitIsInTheStatus(t *testing.T) {
	for _, c := range []struct {
		policy httpbreaker.Policy
		limit  int
	}{
		{httpbreaker.Policy{}, 0},
		{httpbreaker.Policy{MaxConcurrent: 7}, 7},
		{httpbreaker.Policy{AdaptiveConcurrency: true}, httpbreaker.DefaultMaxConcurrent},
		{httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 50}, 50},
	} {
		rt := newTransport(t, newFakeBase(func(string) int { return http.StatusOK }), httpbreaker.WithPolicy(c.policy))
		assert.Equal(t, c.limit, rt.Status("api.test").Limit, "%+v: a host not called yet has the limit its first call meets", c.policy)
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
		assert.Equal(t, c.limit, rt.Status("api.test").Limit, "%+v", c.policy)
	}
}

func TestAdaptivePolicyIsValidated(t *testing.T) {
	for _, p := range []httpbreaker.Policy{
		{MinConcurrent: 2},
		{AdaptiveConcurrency: true, MinConcurrent: -1},
		{AdaptiveConcurrency: true, MaxConcurrent: 10, MinConcurrent: 11},
		{AdaptiveConcurrency: true, MinConcurrent: httpbreaker.DefaultMaxConcurrent + 1},
	} {
		_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(p))
		require.Error(t, err, "%+v", p)
		assert.Contains(t, err.Error(), "MinConcurrent")
	}
	_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 10, MinConcurrent: 10}))
	assert.NoError(t, err)
}

// A call over the adaptive limit is refused at once as the static cap
// refuses: an *OverloadError that says it was the adaptive limit, counted as
// shed and never as a failure (FailureThreshold 1 would open the circuit),
// through the fallback.
func TestAdaptiveLimitRefusesOverTheLimit(t *testing.T) {
	var refused error
	rt, g := limitOfTwoThenGate(t, httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
		refused = err
		return nil, err
	}))

	held := make(chan *http.Response, 2)
	for range 2 {
		go func() {
			resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, "http://api.test/"))
			assert.NoError(t, err)
			held <- resp
		}()
		<-g.entered
	}
	_, err := rt.RoundTrip(mustRequest(t, http.MethodGet, "http://api.test/"))
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	var overload *httpbreaker.OverloadError
	require.ErrorAs(t, err, &overload)
	assert.True(t, overload.Adaptive)
	assert.Equal(t, "api.test", overload.Host)
	assert.Contains(t, err.Error(), "adaptive concurrency limit")
	assert.Same(t, overload, refused, "the fallback was given the refusal")

	st := rt.Status("api.test")
	assert.Equal(t, httpbreaker.StateClosed, st.State)
	assert.Equal(t, uint64(1), st.Total.Shed)
	assert.Zero(t, st.Total.Failures)
	assert.Equal(t, 2, st.InFlight)

	close(g.release)
	for range 2 {
		resp := <-held
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
	}
	assert.Zero(t, rt.Status("api.test").InFlight, "slots come back with the bodies")
	_, err = get(t, rt, "http://api.test/")
	assert.NoError(t, err)
}

// At the limit, Sheddable calls are refused first, then Critical, and
// CriticalPlus last: with a limit of 2, a Sheddable call may join one call
// in flight, a Critical call one more, a CriticalPlus call one over it.
func TestAdaptiveLimitRefusesSheddableFirstAndCriticalPlusLast(t *testing.T) {
	rt, g := limitOfTwoThenGate(t)

	call := func(c httpbreaker.Criticality) error {
		req := mustRequest(t, http.MethodGet, "http://api.test/")
		req = req.WithContext(httpbreaker.WithCriticality(req.Context(), c))
		errs := make(chan error, 1)
		go func() {
			resp, err := rt.RoundTrip(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			errs <- err
		}()
		select {
		case <-g.entered: // admitted: it stays in flight until the gate opens
			return nil
		case err := <-errs:
			return err
		}
	}
	require.NoError(t, call(httpbreaker.Sheddable), "nothing in flight")
	assert.ErrorIs(t, call(httpbreaker.Sheddable), httpbreaker.ErrOverloaded, "Sheddable: the limit less a quarter, at least 1")
	require.NoError(t, call(httpbreaker.Critical))
	assert.ErrorIs(t, call(httpbreaker.Critical), httpbreaker.ErrOverloaded, "Critical: the limit")
	require.NoError(t, call(httpbreaker.CriticalPlus), "CriticalPlus: a quarter over, at least 1")
	assert.ErrorIs(t, call(httpbreaker.CriticalPlus), httpbreaker.ErrOverloaded)
	assert.Equal(t, uint64(3), rt.Status("api.test").Total.Shed)
	close(g.release)
}

// The limit is about the host's queueing: calls that failed at the
// transport, and calls their callers canceled, teach it nothing, however
// slow; ten answered calls do.
func TestAdaptiveLimitIgnoresTransportErrorsAndCancellations(t *testing.T) {
	clock := newClock()
	mode := "error"
	var cancel context.CancelCauseFunc
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		clock.Advance(time.Second)
		switch mode {
		case "error":
			return nil, errors.New("connection reset by peer")
		case "canceled": // the caller gives up while the call waits
			cancel(errors.New("errgroup: a sibling failed"))
			return nil, context.Cause(req.Context())
		}
		return response(req, http.StatusOK, "ok"), nil
	})
	rt := timeEveryCall(newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		AdaptiveConcurrency: true, FailureThreshold: 100,
	})))
	for range 10 {
		_, err := get(t, rt, "http://api.test/")
		require.Error(t, err)
	}
	mode = "canceled"
	for range 10 {
		ctx, stop := context.WithCancelCause(context.Background())
		cancel = stop
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.test/", nil)
		_, err := rt.RoundTrip(req)
		require.Error(t, err)
		stop(nil)
	}
	assert.Equal(t, httpbreaker.DefaultMaxConcurrent, rt.Status("api.test").Limit, "twenty calls, nothing learned")
	mode = "answer"
	for range 10 {
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
	}
	assert.Equal(t, 2, rt.Status("api.test").Limit, "ten answers make a window")
}

// Probes are answers like any other: a window made only of probes moves
// the limit.
func TestAdaptiveLimitLearnsFromProbes(t *testing.T) {
	clock := newClock()
	failing := true
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing {
			return nil, errors.New("connection refused")
		}
		return answerIn(clock, 10*time.Millisecond)(req)
	})
	rt := timeEveryCall(newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		AdaptiveConcurrency: true, FailureThreshold: 1, ResetTimeout: time.Second,
		HalfOpenMaxRequests: 10, SuccessThreshold: 10,
	})))
	_, err := get(t, rt, "http://api.test/")
	require.Error(t, err)
	require.True(t, rt.IsOpen("api.test"))
	clock.Advance(time.Second)
	failing = false
	for range 10 {
		require.False(t, rt.IsClosed("api.test"), "every call below is a probe")
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
	}
	assert.True(t, rt.IsClosed("api.test"))
	assert.Equal(t, 2, rt.Status("api.test").Limit)
}

func TestClearStateRestartsTheAdaptiveLimit(t *testing.T) {
	clock := newClock()
	rt := timeEveryCall(newTransport(t, answerIn(clock, 10*time.Millisecond), httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(adaptive)))
	learnLimitOfTwo(t, rt, "http://api.test/")
	rt.ClearState("api.test")
	assert.Equal(t, httpbreaker.DefaultMaxConcurrent, rt.Status("api.test").Limit)
}

// The adaptive limit as users run it: net/http's transport against an
// httptest server, HTTP/1.1 and HTTP/2, through an http.Client with default
// options. The first window moves the limit whatever the real latencies
// are: it leaves the ceiling at twice the concurrency it saw.
func TestAdaptiveLimitOverRealTransports(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		client, rt, err := httpbreaker.NewClient(&http.Client{Transport: base}, httpbreaker.WithPolicy(adaptive))
		require.NoError(t, err)
		timeEveryCall(rt)
		key := srv.Listener.Addr().String()
		for range 10 {
			resp, err := client.Get(srv.URL + "/")
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			require.NoError(t, resp.Body.Close())
		}
		require.Equal(t, 2, rt.Status(key).Limit)

		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				resp, err := client.Get(srv.URL + "/hold")
				if assert.NoError(t, err) {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				done <- struct{}{}
			}()
			<-entered
		}
		_, err = client.Get(srv.URL + "/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
		for range 2 {
			release <- struct{}{}
			<-done
		}
		assert.Zero(t, rt.Status(key).InFlight)
		resp, err := client.Head(srv.URL + "/")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Zero(t, rt.Status(key).InFlight, "a HEAD frees its slot at once")
	})
}

// A small limit that calls use fully grows, also when the answers have no
// body (a HEAD, a 204) and give their slots back as they come: over
// HTTP/1.1 and HTTP/2, through net/http's own transport, each batch of
// calls as large as the limit and answered in 10ms by the fake clock.
func TestAdaptiveLimitGrowsOnBodylessAnswers(t *testing.T) {
	for _, method := range []string{http.MethodHead, http.MethodGet} { // GET answers 204
		t.Run(method, func(t *testing.T) {
			clock := newClock()
			entered := make(chan struct{}, 16)
			var release atomic.Pointer[chan struct{}]
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wait := *release.Load()
				entered <- struct{}{}
				<-wait
				if r.Method == http.MethodGet {
					w.WriteHeader(http.StatusNoContent)
				}
			})
			overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
				rt := timeEveryCall(newTransport(t, base, httpbreaker.WithClock(clock.Now),
					httpbreaker.WithClassifier(httpbreaker.SuccessStatus(http.StatusOK, http.StatusNoContent)),
					httpbreaker.WithPolicy(httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 64})))
				key := srv.Listener.Addr().String()
				batch := func(n int) {
					gate := make(chan struct{})
					release.Store(&gate)
					done := make(chan error, n)
					for range n {
						go func() {
							resp, err := rt.RoundTrip(mustRequest(t, method, srv.URL))
							if err == nil {
								err = resp.Body.Close()
							}
							done <- err
						}()
					}
					for range n {
						select {
						case <-entered:
						case err := <-done: // refused or failed before reaching the server
							require.NoError(t, err)
							require.Fail(t, "a call ended before the server answered")
						}
					}
					clock.Advance(10 * time.Millisecond)
					close(gate)
					for range n {
						require.NoError(t, <-done)
					}
				}
				for range 10 { // the first window, one call at a time: the limit leaves its ceiling at 2
					batch(1)
				}
				require.Equal(t, 2, rt.Status(key).Limit)
				for i := 0; i < 300 && rt.Status(key).Limit < 6; i++ {
					batch(rt.Status(key).Limit) // every slot taken, no queue: the limit binds
				}
				assert.GreaterOrEqual(t, rt.Status(key).Limit, 6, "a fully used limit grows")
				assert.Zero(t, rt.Status(key).InFlight)
			})
		})
	}
}
