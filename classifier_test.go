package httpbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

func status(code int) *http.Response { return &http.Response{StatusCode: code} }

// transportErrors are classified alike by every built-in classifier.
var transportErrors = []struct {
	err  error
	want httpbreaker.Outcome
}{
	{errUpstream, httpbreaker.Failure},
	{context.DeadlineExceeded, httpbreaker.Failure},
	{&url.Error{Op: "Get", URL: "http://a", Err: context.DeadlineExceeded}, httpbreaker.Failure},
	{context.Canceled, httpbreaker.Ignore},
	{&url.Error{Op: "Get", URL: "http://a", Err: context.Canceled}, httpbreaker.Ignore},
	{fmt.Errorf("dial: %w", context.Canceled), httpbreaker.Ignore},
}

func TestDefaultClassifier(t *testing.T) {
	for code, want := range map[int]httpbreaker.Outcome{
		200: httpbreaker.Success, 201: httpbreaker.Failure, 204: httpbreaker.Failure, 304: httpbreaker.Failure,
		404: httpbreaker.Failure, 429: httpbreaker.Failure, 500: httpbreaker.Failure, 503: httpbreaker.Failure,
	} {
		assert.Equal(t, want, httpbreaker.DefaultClassifier(status(code), nil), "status %d", code)
	}
	for _, tc := range transportErrors {
		assert.Equal(t, tc.want, httpbreaker.DefaultClassifier(nil, tc.err), "%v", tc.err)
	}
}

func TestSuccessStatus(t *testing.T) {
	classify := httpbreaker.SuccessStatus(200, 204, 304, 42, 5000)
	for code, want := range map[int]httpbreaker.Outcome{
		200: httpbreaker.Success, 204: httpbreaker.Success, 304: httpbreaker.Success,
		201: httpbreaker.Failure, 500: httpbreaker.Failure, 42: httpbreaker.Failure, 5000: httpbreaker.Failure,
		-1: httpbreaker.Failure, 999: httpbreaker.Failure,
	} {
		assert.Equal(t, want, classify(status(code), nil), "status %d", code)
	}
	for _, tc := range transportErrors {
		assert.Equal(t, tc.want, classify(nil, tc.err), "%v", tc.err)
	}
	assert.Equal(t, httpbreaker.Failure, httpbreaker.SuccessStatus()(status(200), nil), "no codes: nothing succeeds")
}

// failOnlyServerTrouble is the README's recipe: only 5xx, 429 and 408 (and
// transport errors) count against the host; a 404 is the caller's problem.
func failOnlyServerTrouble(resp *http.Response, err error) httpbreaker.Outcome {
	if err != nil {
		return httpbreaker.DefaultClassifier(nil, err)
	}
	switch code := resp.StatusCode; {
	case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return httpbreaker.Failure
	}
	return httpbreaker.Success
}

func TestClassifierDecidesWhatTrips(t *testing.T) {
	base := newFakeBase(func(string) int { return 404 })
	rt := newTransport(t, base, httpbreaker.WithClassifier(failOnlyServerTrouble),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	for range 5 {
		code, err := get(t, rt, host)
		assert.NoError(t, err)
		assert.Equal(t, 404, code)
	}
	assert.True(t, rt.IsClosed(host), "404s do not trip this classifier")

	odd := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithClassifier(func(*http.Response, error) httpbreaker.Outcome { return 7 }))
	_, _ = get(t, odd, host)
	assert.True(t, odd.IsOpen(host), "an unknown outcome counts as a failure")

	// The default's rule is inlined on the closed path; a classifier of
	// one's own still judges every answer, a 200 too.
	ok := newFakeBase(func(string) int { return http.StatusOK })
	failing200 := newTransport(t, ok, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithClassifier(func(*http.Response, error) httpbreaker.Outcome { return httpbreaker.Failure }))
	_, _ = get(t, failing200, host)
	assert.True(t, failing200.IsOpen(host), "the classifier given, not the default's rule, judged the 200")
}

func TestStringers(t *testing.T) {
	assert.Equal(t, "closed", httpbreaker.StateClosed.String())
	assert.Equal(t, "open", httpbreaker.StateOpen.String())
	assert.Equal(t, "half-open", httpbreaker.StateHalfOpen.String())
	assert.Equal(t, "State(9)", httpbreaker.State(9).String())
	assert.Equal(t, "success", httpbreaker.Success.String())
	assert.Equal(t, "failure", httpbreaker.Failure.String())
	assert.Equal(t, "ignore", httpbreaker.Ignore.String())
	assert.Equal(t, "Outcome(-1)", httpbreaker.Outcome(-1).String())
	assert.True(t, errors.Is(&httpbreaker.OpenError{}, httpbreaker.ErrCircuitOpen))
}

// errgroup and its kin cancel with a cause; net/http then returns the cause,
// not context.Canceled. The caller gave up: the host is not to blame.
func TestCancellationWithACauseIsIgnored(t *testing.T) {
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	defer rt.CloseIdleConnections()
	cause := errors.New("errgroup: a sibling failed")
	for range 5 {
		ctx, cancel := context.WithCancelCause(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		go func() { <-arrived; cancel(cause) }()
		_, err := rt.RoundTrip(req)
		require.ErrorIs(t, err, cause, "the caller still gets net/http's error")
	}
	st := rt.Status(srv.URL)
	assert.Equal(t, httpbreaker.StateClosed, st.State)
	assert.Equal(t, uint64(5), st.Total.Ignored)
	assert.Zero(t, st.Total.Failures)

	// A deadline that expires, with a cause or without, is the host's slowness.
	for _, cause := range []error{nil, errors.New("budget spent")} {
		ctx, cancel := context.WithTimeoutCause(context.Background(), 50*time.Millisecond, cause)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		go func() { <-arrived }()
		_, err := rt.RoundTrip(req)
		require.Error(t, err)
		cancel()
	}
	assert.Equal(t, httpbreaker.StateOpen, rt.State(srv.URL), "two expired deadlines open it")
}

func TestCallerCancellationIsIgnoredButDeadlinesFail(t *testing.T) {
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // hang until the caller gives up
	}))
	defer srv.Close()
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	defer rt.CloseIdleConnections()

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err := rt.RoundTrip(req)
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, rt.IsClosed(srv.URL), "the caller's own cancellation is not the host's failure")

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err = rt.RoundTrip(req)
	<-arrived
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, rt.IsOpen(srv.URL), "a host that outlasts the deadline has failed")
}

func TestServerErrorClassifier(t *testing.T) {
	for code, want := range map[int]httpbreaker.Outcome{
		200: httpbreaker.Success, 201: httpbreaker.Success, 204: httpbreaker.Success, 301: httpbreaker.Success,
		304: httpbreaker.Success, 400: httpbreaker.Success, 404: httpbreaker.Success, 408: httpbreaker.Failure,
		429: httpbreaker.Failure, 500: httpbreaker.Failure, 503: httpbreaker.Failure, 599: httpbreaker.Failure,
	} {
		assert.Equal(t, want, httpbreaker.ServerErrorClassifier(status(code), nil), "%d", code)
	}
	assert.Equal(t, httpbreaker.Failure, httpbreaker.ServerErrorClassifier(nil, errUpstream))
	assert.Equal(t, httpbreaker.Ignore, httpbreaker.ServerErrorClassifier(nil, context.Canceled))
}
