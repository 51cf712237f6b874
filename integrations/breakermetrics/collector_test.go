package breakermetrics_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakermetrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func TestCollector(t *testing.T) {
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		code := 200
		if req.URL.Host == "down.test" {
			code = 503
		}
		return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	require.NoError(t, err)
	for _, u := range []string{"http://up.test/", "http://down.test/", "http://down.test/", "http://down.test/", "http://up.test/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if resp, err := rt.RoundTrip(req); err == nil {
			_ = resp.Body.Close()
		}
	}
	c, err := breakermetrics.New(rt, breakermetrics.WithConstLabels(prometheus.Labels{"client": "menu"}))
	require.NoError(t, err)
	want := `
# HELP httpbreaker_failures_total Calls classified Failure (slow calls included).
# TYPE httpbreaker_failures_total counter
httpbreaker_failures_total{client="menu",host="down.test"} 2
httpbreaker_failures_total{client="menu",host="up.test"} 0
# HELP httpbreaker_rejected_total Requests refused: circuit open, probes busy, or overload (shed_total).
# TYPE httpbreaker_rejected_total counter
httpbreaker_rejected_total{client="menu",host="down.test"} 1
httpbreaker_rejected_total{client="menu",host="up.test"} 0
# HELP httpbreaker_requests_total Calls sent to the base transport that returned.
# TYPE httpbreaker_requests_total counter
httpbreaker_requests_total{client="menu",host="down.test"} 2
httpbreaker_requests_total{client="menu",host="up.test"} 2
# HELP httpbreaker_state Circuit state per host: 0 closed, 1 open, 2 half-open.
# TYPE httpbreaker_state gauge
httpbreaker_state{client="menu",host="down.test"} 1
httpbreaker_state{client="menu",host="up.test"} 0
# HELP httpbreaker_successes_total Calls classified Success.
# TYPE httpbreaker_successes_total counter
httpbreaker_successes_total{client="menu",host="down.test"} 0
httpbreaker_successes_total{client="menu",host="up.test"} 2
# HELP httpbreaker_transitions_total State changes of every host, by from and to.
# TYPE httpbreaker_transitions_total counter
httpbreaker_transitions_total{client="menu",from="closed",to="open"} 1
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"httpbreaker_failures_total", "httpbreaker_rejected_total", "httpbreaker_requests_total",
		"httpbreaker_state", "httpbreaker_successes_total", "httpbreaker_transitions_total"))
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP httpbreaker_ignored_total Calls classified Ignore.
# TYPE httpbreaker_ignored_total counter
httpbreaker_ignored_total{client="menu",host="down.test"} 0
httpbreaker_ignored_total{client="menu",host="up.test"} 0
`), "httpbreaker_ignored_total"))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems, "metric names and help follow Prometheus' conventions")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	_, err = reg.Gather()
	require.NoError(t, err)
}

// A host that is closed but shedding must not look healthy.
func TestCollectorShowsShedding(t *testing.T) {
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://busy.test/", nil)
	held, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer held.Body.Close()
	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)

	c, err := breakermetrics.New(rt)
	require.NoError(t, err)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP httpbreaker_concurrency_limit The cap on calls in flight now: MaxConcurrent, or the adaptive limit under Policy.AdaptiveConcurrency; 0 when uncapped.
# TYPE httpbreaker_concurrency_limit gauge
httpbreaker_concurrency_limit{host="busy.test"} 1
# HELP httpbreaker_in_flight Calls in flight now, counted under Policy.MaxConcurrent.
# TYPE httpbreaker_in_flight gauge
httpbreaker_in_flight{host="busy.test"} 1
# HELP httpbreaker_shed_total Requests refused for overload (Policy.Throttle or MaxConcurrent), part of rejected_total.
# TYPE httpbreaker_shed_total counter
httpbreaker_shed_total{host="busy.test"} 1
# HELP httpbreaker_shedding 1 while a closed circuit refuses calls for overload: up but not healthy.
# TYPE httpbreaker_shedding gauge
httpbreaker_shedding{host="busy.test"} 1
# HELP httpbreaker_state Circuit state per host: 0 closed, 1 open, 2 half-open.
# TYPE httpbreaker_state gauge
httpbreaker_state{host="busy.test"} 0
# HELP httpbreaker_throttle Share of calls adaptive throttling refuses now (Policy.Throttle).
# TYPE httpbreaker_throttle gauge
httpbreaker_throttle{host="busy.test"} 0
`), "httpbreaker_concurrency_limit", "httpbreaker_in_flight", "httpbreaker_shed_total", "httpbreaker_shedding", "httpbreaker_state", "httpbreaker_throttle"))
}

func TestNewRejectsBadOptions(t *testing.T) {
	rt, err := httpbreaker.New(nil)
	require.NoError(t, err)
	for name, opt := range map[string]breakermetrics.Option{
		"nil":             nil,
		"namespace":       breakermetrics.WithNamespace("http-breaker"),
		"empty namespace": breakermetrics.WithNamespace(""),
		"label":           breakermetrics.WithConstLabels(prometheus.Labels{"a-b": "x"}),
		"reserved label":  breakermetrics.WithConstLabels(prometheus.Labels{"__name__": "x"}),
	} {
		_, err := breakermetrics.New(rt, opt)
		assert.Error(t, err, name)
	}
	_, err = breakermetrics.New(nil)
	assert.Error(t, err)
	_, err = breakermetrics.New(rt, breakermetrics.WithNamespace("my_app"))
	assert.NoError(t, err)
}

// The retry budget's answers are counters per host.
func TestCollectorCountsRetries(t *testing.T) {
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 503, Body: io.NopCloser(strings.NewReader("busy")), Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, RetryBudget: 0.1, MinRetries: 1, FailureThreshold: 100, FailureRatio: 1,
	}))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.True(t, rt.AllowRetry(req))
	require.False(t, rt.AllowRetry(req))
	require.False(t, rt.AllowRetry(req))

	c, err := breakermetrics.New(rt)
	require.NoError(t, err)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP httpbreaker_retries_denied_total Retries Transport.AllowRetry refused: budget spent, circuit refusing, or host shedding.
# TYPE httpbreaker_retries_denied_total counter
httpbreaker_retries_denied_total{host="api.test"} 2
# HELP httpbreaker_retries_total Retries Transport.AllowRetry allowed (Policy.RetryBudget).
# TYPE httpbreaker_retries_total counter
httpbreaker_retries_total{host="api.test"} 1
`), "httpbreaker_retries_total", "httpbreaker_retries_denied_total"))
}
