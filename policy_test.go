package httpbreaker_test

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// call is one request of a policy table: at an instant, the upstream answers
// status (0: a transport error), with an optional Retry-After, after taking
// some time on the injected clock. Then sent says whether it reached the
// upstream, state what the circuit must be, and retryAt, when set, the
// RetryAt a refusal must now carry (as an offset from t0).
type call struct {
	at         time.Duration
	status     int
	retryAfter string
	takes      time.Duration
	sent       bool
	state      httpbreaker.State
	retryAt    time.Duration
}

func runCalls(t *testing.T, policy httpbreaker.Policy, calls []call, opts ...httpbreaker.Option) []string {
	t.Helper()
	clock := newClock()
	var current atomic.Pointer[call]
	var sent atomic.Int64
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c := current.Load()
		sent.Add(1)
		clock.At(c.at + c.takes)
		if c.status == 0 {
			return nil, errUpstream
		}
		resp := response(req, c.status, "answer")
		if c.retryAfter != "" {
			resp.Header.Set("Retry-After", c.retryAfter)
		}
		return resp, nil
	})
	log := &transitionLog{}
	opts = append([]httpbreaker.Option{httpbreaker.WithPolicy(policy), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithOnStateChange(log.listen)}, opts...)
	rt := newTransport(t, base, opts...)
	for i := range calls {
		c := calls[i]
		current.Store(&c)
		clock.At(c.at)
		before := sent.Load()
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host))
		assert.Equal(t, c.sent, sent.Load() > before, "call %d at %v: sent", i, c.at)
		if c.sent && c.status != 0 {
			require.NoError(t, err, "call %d", i)
			assert.Equal(t, c.status, resp.StatusCode, "call %d: the caller gets the response unchanged", i)
			assert.Equal(t, c.retryAfter, resp.Header.Get("Retry-After"))
			_ = resp.Body.Close()
		}
		if !c.sent {
			assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "call %d", i)
		}
		assert.Equal(t, c.state, rt.State(host), "call %d at %v", i, c.at)
		if c.retryAt != 0 {
			_, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host))
			var open *httpbreaker.OpenError
			if assert.ErrorAs(t, err, &open, "call %d: refused after", i) {
				assert.Equal(t, t0.Add(c.retryAt), open.RetryAt, "call %d: RetryAt", i)
			}
		}
	}
	return log.get()
}

func TestRateWindow(t *testing.T) {
	s := time.Second
	window := httpbreaker.Policy{FailureThreshold: 100, Window: 10 * s, MinimumRequests: 4, FailureRatio: 0.5, ResetTimeout: 5 * s}
	tests := []struct {
		name   string
		policy httpbreaker.Policy
		calls  []call
	}{
		{"opens at the ratio once the minimum is seen", window, []call{
			{at: 0, status: 500, sent: true, state: closed},
			{at: 1 * s, status: 200, sent: true, state: closed},
			{at: 2 * s, status: 0, sent: true, state: closed}, // 2 of 3: below the minimum
			{at: 3 * s, status: 200, sent: true, state: open, retryAt: 8 * s},
			{at: 4 * s, status: 200, sent: false, state: open},
		}},
		{"below the ratio stays closed", window, []call{
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 200, sent: true, state: closed},
			{at: 0, status: 200, sent: true, state: closed},
			{at: 0, status: 200, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed}, // 2 of 5
			{at: 0, status: 500, sent: true, state: open},   // 3 of 6
		}},
		{"old buckets slide out of the window", window, []call{
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed},
			{at: 10 * s, status: 500, sent: true, state: closed}, // the 0s bucket is gone: 1 call
			{at: 15 * s, status: 200, sent: true, state: closed},
			{at: 19 * s, status: 200, sent: true, state: closed},
			{at: 19*s + s/2, status: 500, sent: true, state: open}, // 2 of 4 within [10s, 20s)
		}},
		{"the consecutive rule stays in force and may fire first", httpbreaker.Policy{
			FailureThreshold: 3, Window: 10 * s, MinimumRequests: 100}, []call{
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: open},
		}},
		{"the rate may fire first", httpbreaker.Policy{
			FailureThreshold: 5, Window: 10 * s, MinimumRequests: 4}, []call{
			{at: 0, status: 200, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 200, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: open}, // default ratio 0.5; one failure in a row
		}},
		{"the window starts empty when the circuit closes", window, []call{
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: closed},
			{at: 0, status: 500, sent: true, state: open},
			{at: 5 * s, status: 200, sent: true, state: closed}, // the probe closes it
			{at: 5 * s, status: 500, sent: true, state: closed},
			{at: 5 * s, status: 500, sent: true, state: closed},
			{at: 5 * s, status: 200, sent: true, state: closed},
			{at: 5 * s, status: 500, sent: true, state: open}, // 3 of 4 since closing
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runCalls(t, tt.policy, tt.calls) })
	}
}

func TestRateWindowIgnoresCanceledCalls(t *testing.T) {
	s := time.Second
	ignore404 := func(resp *http.Response, err error) httpbreaker.Outcome {
		if err == nil && resp.StatusCode == 404 {
			return httpbreaker.Ignore
		}
		return httpbreaker.DefaultClassifier(resp, err)
	}
	runCalls(t, httpbreaker.Policy{FailureThreshold: 100, Window: 10 * s, MinimumRequests: 3}, []call{
		{at: 0, status: 500, sent: true, state: closed},
		{at: 0, status: 404, sent: true, state: closed},
		{at: 0, status: 404, sent: true, state: closed},
		{at: 0, status: 404, sent: true, state: closed},
		{at: 0, status: 200, sent: true, state: closed}, // 1 of 2 classified: below the minimum
		{at: 0, status: 200, sent: true, state: closed},
		{at: 0, status: 500, sent: true, state: open},
	}, httpbreaker.WithClassifier(ignore404))
}

func TestSlowCalls(t *testing.T) {
	s := time.Second
	t.Run("a slow success is a failure, the caller still gets it", func(t *testing.T) {
		runCalls(t, httpbreaker.Policy{FailureThreshold: 2, SlowCall: 2 * s, ResetTimeout: 10 * s}, []call{
			{at: 0, status: 200, takes: 3 * s, sent: true, state: closed},
			{at: 5 * s, status: 200, takes: 2 * s, sent: true, state: closed}, // not longer than SlowCall: a success
			{at: 10 * s, status: 200, takes: 3 * s, sent: true, state: closed},
			{at: 20 * s, status: 200, takes: 3 * s, sent: true, state: open, retryAt: 33 * s},
		})
	})
	t.Run("in half-open too", func(t *testing.T) {
		runCalls(t, httpbreaker.Policy{FailureThreshold: 1, SlowCall: s, ResetTimeout: 10 * s}, []call{
			{at: 0, status: 500, sent: true, state: open},
			{at: 10 * s, status: 200, takes: 2 * s, sent: true, state: open, retryAt: 22 * s},
			{at: 22 * s, status: 200, takes: s, sent: true, state: closed},
		})
	})
	t.Run("slow calls feed the rate window", func(t *testing.T) {
		runCalls(t, httpbreaker.Policy{FailureThreshold: 10, SlowCall: s, Window: time.Minute, MinimumRequests: 2}, []call{
			{at: 0, status: 200, sent: true, state: closed},
			{at: 0, status: 200, takes: 2 * s, sent: true, state: open},
		})
	})
}

func TestGrowingOpenTime(t *testing.T) {
	s := time.Second
	log := runCalls(t, httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: 10 * s, MaxResetTimeout: 35 * s}, []call{
		{at: 0, status: 500, sent: true, state: open, retryAt: 10 * s},
		{at: 10 * s, status: 500, sent: true, state: open, retryAt: 30 * s}, // 2×
		{at: 30 * s, status: 500, sent: true, state: open, retryAt: 65 * s}, // 4× = 40s, capped at 35s
		{at: 64 * s, status: 200, sent: false, state: open},
		{at: 65 * s, status: 500, sent: true, state: open, retryAt: 100 * s}, // still capped
		{at: 100 * s, status: 200, sent: true, state: closed},                // closing resets the growth
		{at: 101 * s, status: 500, sent: true, state: open, retryAt: 111 * s},
	})
	assert.Equal(t, "api.test: closed -> open", log[0])
	assert.Len(t, log, 10)
}

func TestRetryAfter(t *testing.T) {
	s := time.Second
	policy := httpbreaker.Policy{FailureThreshold: 5, ResetTimeout: 10 * s, MaxRetryAfter: 2 * time.Minute}
	t.Run("a valid Retry-After opens at once until then, capped", func(t *testing.T) {
		runCalls(t, policy, []call{
			{at: 0, status: 503, retryAfter: "30", sent: true, state: open, retryAt: 30 * s},
			{at: 29 * s, status: 200, sent: false, state: open},
			{at: 30 * s, status: 200, sent: true, state: closed},
			{at: 40 * s, status: 429, retryAfter: t0.Add(130 * s).Format(http.TimeFormat), sent: true, state: open, retryAt: 130 * s},
			{at: 130 * s, status: 200, sent: true, state: closed},
			{at: 140 * s, status: 503, retryAfter: "600", sent: true, state: open, retryAt: 260 * s}, // capped at 2m
		})
	})
	t.Run("in half-open it reopens until then", func(t *testing.T) {
		runCalls(t, httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: 10 * s, MaxRetryAfter: time.Hour}, []call{
			{at: 0, status: 500, sent: true, state: open, retryAt: 10 * s},
			{at: 10 * s, status: 503, retryAfter: "45", sent: true, state: open, retryAt: 55 * s},
			{at: 55 * s, status: 503, sent: true, state: open, retryAt: 65 * s}, // no header: a plain failed probe
			{at: 65 * s, status: 200, sent: true, state: closed},
		})
	})
	t.Run("unusable values are plain failures", func(t *testing.T) {
		calls := []call{}
		for _, v := range []string{"0", "-5", "soon", "1.5", "99999999999999999999", t0.Add(-s).Format(http.TimeFormat)} {
			calls = append(calls, call{at: 0, status: 503, retryAfter: v, sent: true, state: closed})
			calls = append(calls, call{at: 0, status: 200, sent: true, state: closed}) // reset the count
		}
		calls = append(calls,
			call{at: 0, status: 500, retryAfter: "30", sent: true, state: closed}, // not 429 or 503
			call{at: 0, status: 200, sent: true, state: closed})
		runCalls(t, policy, calls)
	})
	t.Run("off unless MaxRetryAfter is set", func(t *testing.T) {
		runCalls(t, httpbreaker.Policy{FailureThreshold: 2}, []call{
			{at: 0, status: 503, retryAfter: "30", sent: true, state: closed},
		})
	})
	t.Run("only for responses classified Failure", func(t *testing.T) {
		runCalls(t, policy, []call{
			{at: 0, status: 503, retryAfter: "30", sent: true, state: closed},
		}, httpbreaker.WithClassifier(httpbreaker.SuccessStatus(200, 503)))
	})
}

func TestPolicyTransitionsReachListeners(t *testing.T) {
	s := time.Second
	log := runCalls(t, httpbreaker.Policy{FailureThreshold: 9, Window: 10 * s, MinimumRequests: 2, MaxRetryAfter: time.Minute, ResetTimeout: s}, []call{
		{at: 0, status: 500, sent: true, state: closed},
		{at: 0, status: 500, sent: true, state: open}, // by rate
		{at: 1 * s, status: 200, sent: true, state: closed},
		{at: 2 * s, status: 429, retryAfter: "5", sent: true, state: open, retryAt: 7 * s}, // by Retry-After
	})
	assert.Equal(t, []string{
		"api.test: closed -> open", "api.test: open -> half-open", "api.test: half-open -> closed", "api.test: closed -> open",
	}, log)
}

func TestNewRejectsBadPolicies(t *testing.T) {
	tests := []struct {
		policy httpbreaker.Policy
		want   string
	}{
		{httpbreaker.Policy{Window: -time.Second}, "Window"},
		{httpbreaker.Policy{SlowCall: -1}, "SlowCall"},
		{httpbreaker.Policy{MaxResetTimeout: -1}, "MaxResetTimeout"},
		{httpbreaker.Policy{MaxRetryAfter: -1}, "MaxRetryAfter"},
		{httpbreaker.Policy{Window: time.Second, MinimumRequests: -1}, "MinimumRequests"},
		{httpbreaker.Policy{Window: time.Second, FailureRatio: -0.1}, "FailureRatio"},
		{httpbreaker.Policy{Window: time.Second, FailureRatio: 1.5}, "FailureRatio"},
		{httpbreaker.Policy{MinimumRequests: 10}, "MinimumRequests"},
		{httpbreaker.Policy{FailureRatio: 0.3}, "FailureRatio"},
		{httpbreaker.Policy{ResetTimeout: time.Minute, MaxResetTimeout: time.Second}, "MaxResetTimeout"},
		{httpbreaker.Policy{MaxResetTimeout: time.Second}, "MaxResetTimeout"}, // below the 60s default
		{httpbreaker.Policy{Window: time.Second, Throttle: -1}, "Throttle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: 0.5}, "Throttle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: math.NaN()}, "Throttle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: math.Inf(1)}, "Throttle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: 2}, "Throttle"}, // sheds only where the rate rule opens
		{httpbreaker.Policy{Window: time.Second, Throttle: 4, FailureRatio: 0.7}, "Throttle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: 1.5, MaxThrottle: 1.5}, "MaxThrottle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: 1.5, MaxThrottle: -0.1}, "MaxThrottle"},
		{httpbreaker.Policy{Window: time.Second, Throttle: 1.5, MaxThrottle: math.NaN()}, "MaxThrottle"},
		{httpbreaker.Policy{MaxThrottle: 0.5}, "MaxThrottle"}, // needs Throttle
		{httpbreaker.Policy{MaxConcurrent: -1}, "MaxConcurrent"},
		// durations too short to mean anything: a bare number is nanoseconds
		{httpbreaker.Policy{Window: 5}, "Window"},
		{httpbreaker.Policy{ResetTimeout: 30}, "ResetTimeout"},
		{httpbreaker.Policy{SlowCall: time.Microsecond}, "SlowCall"},
		{httpbreaker.Policy{ResetTimeout: time.Millisecond, MaxResetTimeout: 999 * time.Microsecond}, "MaxResetTimeout"},
		{httpbreaker.Policy{MaxRetryAfter: 60}, "MaxRetryAfter"},
	}
	for _, tt := range tests {
		_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(tt.policy))
		if assert.Error(t, err, "%+v", tt.policy) {
			assert.Contains(t, err.Error(), "Policy."+tt.want)
		}
	}
	for _, ok := range []httpbreaker.Policy{
		{Window: time.Second, FailureRatio: 1, MinimumRequests: 1},
		{ResetTimeout: time.Second, MaxResetTimeout: time.Second},
		{SlowCall: time.Millisecond, MaxRetryAfter: time.Hour},
		{Window: time.Second, Throttle: 1.5},
		{Throttle: 2}, // alone: no rate rule to begin below
		{Throttle: 1.5, MinimumRequests: 5},
		{RetryBudget: 0.2}, // alone
		{Window: time.Second, Throttle: 2, FailureRatio: 0.8, MaxThrottle: 1},
		{MaxConcurrent: 1},
		{Window: time.Millisecond, ResetTimeout: time.Millisecond, SlowCall: time.Millisecond}, // the shortest
	} {
		_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(ok))
		assert.NoError(t, err, "%+v", ok)
	}
}

// A saturated retry time is not an isolation: a huge ResetTimeout, or a
// far Retry-After with an uncapped MaxRetryAfter, opens the circuit for as
// long as time can say, and says so.
func TestHugeOpenTimesAreNotIsolations(t *testing.T) {
	for name, policy := range map[string]httpbreaker.Policy{
		"ResetTimeout":  {FailureThreshold: 1, ResetTimeout: math.MaxInt64},
		"MaxRetryAfter": {FailureThreshold: 100, MaxRetryAfter: math.MaxInt64},
	} {
		t.Run(name, func(t *testing.T) {
			var heard []httpbreaker.Transition
			base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				resp := response(req, 503, "")
				resp.Header.Set("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")
				return resp, nil
			})
			rt := newTransport(t, base, httpbreaker.WithPolicy(policy),
				httpbreaker.WithOnTransition(func(ev httpbreaker.Transition) { heard = append(heard, ev) }))
			_, _ = get(t, rt, host)
			st := rt.Status(host)
			require.Equal(t, httpbreaker.StateOpen, st.State)
			assert.False(t, st.Isolated)
			assert.False(t, st.RetryAt.IsZero())
			_, err := get(t, rt, host)
			assert.NotContains(t, err.Error(), "isolated")
			require.Len(t, heard, 1)
			assert.False(t, heard[0].RetryAt.IsZero(), "an opening with a retry time, not an isolation")
		})
	}
}

// A failure in the rate window is forgotten for good once it slid out, not
// counted again when the window's 24-bit bucket tags come round.
func TestRateWindowForgetsOldFailuresExactly(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{
			FailureThreshold: 100, Window: 10 * time.Millisecond, MinimumRequests: 2, FailureRatio: 0.5,
		}))
	_, _ = get(t, rt, host)                  // a failure in bucket 0 (1ms buckets)
	clock.At((1<<24 + 1) * time.Millisecond) // bucket 2^24+1: its tag is bucket 1's
	_, _ = get(t, rt, host)
	assert.Equal(t, httpbreaker.StateClosed, rt.State(host), "one failure in the window, below MinimumRequests")
	clock.At((1<<24 + 2) * time.Millisecond)
	_, _ = get(t, rt, host)
	assert.Equal(t, httpbreaker.StateOpen, rt.State(host), "two now")
}

func TestPolicyIsCopied(t *testing.T) {
	p := httpbreaker.Policy{FailureThreshold: 1}
	rt := newTransport(t, failingHosts("api.test"), httpbreaker.WithPolicy(p))
	p.FailureThreshold = 100
	_, _ = get(t, rt, host)
	assert.True(t, rt.IsOpen(host))
}

// Each windowed rule switches on alone: the retry budget and the throttle
// count over DefaultRuleWindow without Window and never trip the circuit
// on a failure rate; Window is what turns rate tripping on. Through
// net/http's transport to a real server that fails every call.
func TestEachWindowedRuleSwitchesOnAlone(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	// calls sends n calls and returns how many were refused with each error.
	calls := func(t *testing.T, rt *httpbreaker.Transport, n int) (open, overloaded, firstOpen int) {
		for i := 1; i <= n; i++ {
			_, err := get(t, rt, failing.URL)
			switch {
			case errors.Is(err, httpbreaker.ErrCircuitOpen):
				open++
				if firstOpen == 0 {
					firstOpen = i
				}
			case errors.Is(err, httpbreaker.ErrOverloaded):
				overloaded++
			}
		}
		return open, overloaded, firstOpen
	}
	newRT := func(t *testing.T, p httpbreaker.Policy) *httpbreaker.Transport {
		rt := newTransport(t, nil, httpbreaker.WithPolicy(p), httpbreaker.WithClock(newClock().Now))
		t.Cleanup(rt.CloseIdleConnections)
		return rt
	}

	t.Run("retry budget alone", func(t *testing.T) {
		rt := newRT(t, httpbreaker.Policy{FailureThreshold: 1000, RetryBudget: 0.2})
		open, _, _ := calls(t, rt, 100)
		assert.Zero(t, open, "no rate tripping")
		allowed := 0
		for rt.AllowRetry(mustRequest(t, http.MethodGet, failing.URL)) && allowed < 1000 {
			allowed++
		}
		// The allowed retries count as calls sent again: r < 10 + 0.2·(100 − r).
		assert.Equal(t, 25, allowed, "the budget counts the 100 calls, with its floor of 10")
	})
	t.Run("throttle alone", func(t *testing.T) {
		rt := newRT(t, httpbreaker.Policy{FailureThreshold: 1000, Throttle: 2})
		open, overloaded, _ := calls(t, rt, 200)
		assert.Zero(t, open, "no rate tripping")
		assert.Positive(t, overloaded, "the throttle refuses calls to a host that accepts none")
	})
	t.Run("Window turns rate tripping on", func(t *testing.T) {
		rt := newRT(t, httpbreaker.Policy{FailureThreshold: 1000, Window: time.Minute, RetryBudget: 0.2})
		_, _, first := calls(t, rt, 30)
		assert.Equal(t, 21, first, "the rate rule opened at MinimumRequests (20) failures")
	})
}
