package retryhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/retryhttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// downServer answers 503 while down, 200 after; it counts its calls.
func downServer(t *testing.T) (*httptest.Server, *atomic.Bool, *atomic.Int64) {
	var down atomic.Bool
	var calls atomic.Int64
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &down, &calls
}

func retryingClient(rt http.RoundTripper, check retryablehttp.CheckRetry) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.HTTPClient.Transport = rt
	c.RetryMax = 10
	c.RetryWaitMin, c.RetryWaitMax = time.Microsecond, time.Microsecond
	c.Logger = nil
	c.CheckRetry = check
	return c
}

func TestRetriesStopAtTheOpenCircuit(t *testing.T) {
	srv, _, calls := downServer(t)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	require.NoError(t, err)
	client := retryingClient(rt, retryhttp.CheckRetry)

	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.Equal(t, int64(3), calls.Load(), "at most FailureThreshold upstream calls")

	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "then it fails fast")
	assert.Equal(t, int64(3), calls.Load())
}

func TestWithoutItRetriesHammerTheRefusal(t *testing.T) {
	srv, _, calls := downServer(t)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	require.NoError(t, err)
	var refusals atomic.Int64
	counting := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if errors.Is(err, httpbreaker.ErrCircuitOpen) {
			refusals.Add(1)
		}
		return resp, err
	})
	_, err = retryingClient(counting, retryablehttp.DefaultRetryPolicy).Get(srv.URL)
	require.Error(t, err)
	assert.Equal(t, int64(3), calls.Load(), "the breaker still protects the host")
	assert.Equal(t, int64(8), refusals.Load(), "but the default policy retries every refusal")
}

func TestInvalidMethodIsNotRetried(t *testing.T) {
	srv, _, calls := downServer(t)
	rt, err := httpbreaker.New(nil, httpbreaker.WithMethods(http.MethodGet))
	require.NoError(t, err)
	req, err := retryablehttp.NewRequest(http.MethodPost, srv.URL, nil)
	require.NoError(t, err)
	_, err = retryingClient(rt, retryhttp.CheckRetry).Do(req)
	require.ErrorIs(t, err, httpbreaker.ErrInvalidMethod)
	assert.Zero(t, calls.Load())
}

// A host shedding load gets no retry storm: with a slow body holding the
// only slot, the retrying client gives up at the first refusal.
func TestRetriesStopAtOverload(t *testing.T) {
	finish := make(chan struct{})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte("first"))
		w.(http.Flusher).Flush()
		<-finish
	}))
	t.Cleanup(srv.Close)
	defer close(finish)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	require.NoError(t, err)
	t.Cleanup(rt.CloseIdleConnections)
	holder, err := (&http.Client{Transport: rt}).Get(srv.URL)
	require.NoError(t, err)
	defer holder.Body.Close()
	var refusals atomic.Int64
	counting := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if errors.Is(err, httpbreaker.ErrOverloaded) {
			refusals.Add(1)
		}
		return resp, err
	})
	_, err = retryingClient(counting, retryhttp.CheckRetry).Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	assert.Equal(t, int64(1), refusals.Load(), "no retry of a refusal for overload")
	assert.Equal(t, int64(1), calls.Load(), "the host saw only the holder")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func TestWaiterRetriesAsTheProbe(t *testing.T) {
	srv, down, calls := downServer(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rt, err := httpbreaker.New(nil, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: 30 * time.Second}))
	require.NoError(t, err)
	var waited time.Duration
	w := retryhttp.Waiter{MaxWait: time.Minute, Now: clock.Now, Sleep: func(ctx context.Context, d time.Duration) error {
		waited += d
		down.Store(false) // the host recovers while we wait
		return clock.Sleep(ctx, d)
	}}
	resp, err := retryingClient(rt, w.CheckRetry).Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 30*time.Second, waited, "it waited exactly until RetryAt")
	assert.Equal(t, int64(3), calls.Load(), "two failures, then the probe")

	short := retryhttp.Waiter{MaxWait: time.Second, Now: clock.Now, Sleep: clock.Sleep}
	down.Store(true)
	_, err = retryingClient(rt, short.CheckRetry).Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "30s is more than it may wait")
}

func TestWaiterGivesUpOnIsolatedHostsAndCanceledContexts(t *testing.T) {
	srv, _, _ := downServer(t)
	rt, err := httpbreaker.New(nil)
	require.NoError(t, err)
	rt.Isolate(srv.URL)
	_, err = retryingClient(rt, retryhttp.Waiter{MaxWait: time.Hour}.CheckRetry).Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok, err := retryhttp.Waiter{MaxWait: 2 * time.Hour}.CheckRetry(ctx, nil, &httpbreaker.OpenError{State: httpbreaker.StateOpen, RetryAt: time.Now().Add(time.Hour)})
	assert.False(t, ok)
	assert.ErrorIs(t, err, context.Canceled)
}

// Under WithStaleIfError, a one-off 503 is retried (the retry gets a fresh
// answer), not answered from the stale cache; the stale answer comes once
// the retries are spent, and at once when the circuit refuses.
func TestRetriesComeBeforeTheStaleAnswer(t *testing.T) {
	var calls atomic.Int64
	var failures atomic.Int64 // how many of the next calls fail
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := calls.Add(1)
		if failures.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("menu " + string(rune('0'+n))))
	}))
	t.Cleanup(srv.Close)
	rt, err := httpbreaker.New(nil, httpbreaker.WithStaleIfError(1<<20),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 5}))
	require.NoError(t, err)
	t.Cleanup(rt.CloseIdleConnections)
	client := retryingClient(rt, retryhttp.CheckRetry)
	client.RetryMax = 2
	client.ErrorHandler = retryhttp.ErrorHandler
	get := func() (string, []string, error) {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return "", nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), resp.Header.Values("Warning"), err
	}

	body, warnings, err := get() // kept for later
	require.NoError(t, err)
	require.Equal(t, "menu 1", body)
	require.Empty(t, warnings)

	failures.Store(1) // a one-off 503
	body, warnings, err = get()
	require.NoError(t, err)
	assert.Equal(t, "menu 3", body, "the retry got a fresh answer, not the stale one")
	assert.Empty(t, warnings)

	failures.Store(3) // down for longer than the retries last
	before := calls.Load()
	body, warnings, err = get()
	require.NoError(t, err, "the stale answer once the retries are spent")
	assert.Equal(t, "menu 3", body)
	assert.Contains(t, warnings, `111 - "Revalidation Failed"`)
	assert.Equal(t, int64(3), calls.Load()-before, "one call and two retries")

	rt.Isolate(srv.URL) // refused: the stale answer at once, no retry
	before = calls.Load()
	body, warnings, err = get()
	require.NoError(t, err)
	assert.Equal(t, "menu 3", body)
	assert.Equal(t, []string{`110 - "Response is Stale"`}, warnings)
	assert.Zero(t, calls.Load()-before)
}

// Without a stale answer, ErrorHandler gives up as retryablehttp does,
// saying how many attempts were made, with the response closed.
func TestErrorHandlerWithoutAStaleAnswer(t *testing.T) {
	srv, _, _ := downServer(t)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
	require.NoError(t, err)
	t.Cleanup(rt.CloseIdleConnections)
	client := retryingClient(rt, retryhttp.CheckRetry)
	client.RetryMax = 1
	client.ErrorHandler = retryhttp.ErrorHandler
	_, err = client.Get(srv.URL)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "giving up after 2 attempt(s)")
	assert.Contains(t, err.Error(), "503")
}

// budgetPolicy lets the breaker stay closed on a failing host, so that only
// the budget stops the retries: one retry per window, plus a tenth of the
// calls.
var budgetPolicy = httpbreaker.Policy{Window: time.Minute, RetryBudget: 0.1, MinRetries: 1, FailureThreshold: 100, FailureRatio: 1}

// fast makes a client's waits short and its log quiet, as a test wants.
func fast(c *retryablehttp.Client) *retryablehttp.Client {
	c.RetryMax = 10
	c.RetryWaitMin, c.RetryWaitMax = time.Microsecond, time.Microsecond
	c.Logger = nil
	return c
}

// A client made by NewClient retries while the host's budget lasts, then
// ends the call as RetryMax ends it: an error saying how many attempts
// were made, never the 503 as a success. The host sees the budget's
// retries, not the client's RetryMax, and each retry is charged once.
func TestNewClientStopsWhenTheBudgetIsSpentAsRetryMaxWould(t *testing.T) {
	srv, _, calls := downServer(t)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(budgetPolicy))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()
	client := fast(retryhttp.NewClient(rt))

	resp, err := client.Get(srv.URL)
	require.ErrorIs(t, err, retryhttp.ErrRetryDenied)
	assert.Nil(t, resp)
	assert.Contains(t, err.Error(), "giving up after 2 attempt(s)")
	// One call earns ⌊1 + 0.1·1⌋ = 1 retry; the second attempt is a retry,
	// not a fresh call, so it earns none.
	assert.Equal(t, int64(2), calls.Load(), "RetryMax is 10")
	c := rt.Snapshot()[0].Total
	assert.Equal(t, uint64(1), c.Retries)
	assert.Equal(t, uint64(1), c.RetriesDenied)

	exhausted := fast(retryhttp.NewClient(rt))
	exhausted.CheckRetry, exhausted.PrepareRetry = retryhttp.CheckRetry, nil // no budget: RetryMax ends it
	exhausted.RetryMax = 1
	resp, err = exhausted.Get(srv.URL)
	require.Error(t, err)
	assert.Nil(t, resp)
	assert.Contains(t, err.Error(), "giving up after 2 attempt(s)", "the same ending")
}

// go-retryablehttp asks CheckRetry after its last attempt too: NewClient
// charges only the retries it sends. Budgeted, a CheckRetry alone, charges
// one more.
func TestNewClientChargesExactlyTheRetriesSent(t *testing.T) {
	srv, _, calls := downServer(t)
	roomy := httpbreaker.Policy{RetryBudget: 0.1, MinRetries: 1000, FailureThreshold: 1000}
	for _, c := range []struct {
		name    string
		client  func(rt *httpbreaker.Transport) *retryablehttp.Client
		charged uint64
	}{
		{"NewClient", func(rt *httpbreaker.Transport) *retryablehttp.Client { return fast(retryhttp.NewClient(rt)) }, 3},
		{"Budgeted", func(rt *httpbreaker.Transport) *retryablehttp.Client {
			return retryingClient(rt, retryhttp.Budgeted(rt))
		}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(roomy))
			require.NoError(t, err)
			defer rt.CloseIdleConnections()
			client := c.client(rt)
			client.RetryMax = 3
			before := calls.Load()
			_, err = client.Get(srv.URL)
			require.Error(t, err)
			assert.Equal(t, int64(4), calls.Load()-before, "four attempts")
			assert.Equal(t, c.charged, rt.Snapshot()[0].Total.Retries)
		})
	}
}

// A retry of a call that failed with a transport error is charged to the
// circuit the request itself uses: one a key func picks from a header,
// which the error does not carry.
func TestNewClientChargesTheRequestsOwnCircuit(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens: connection refused
	byTenant := httpbreaker.WithKeyFunc(func(r *http.Request) string { return "tenant:" + r.Header.Get("X-Tenant") })
	rt, err := httpbreaker.New(nil, byTenant, httpbreaker.WithPolicy(budgetPolicy))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()
	client := fast(retryhttp.NewClient(rt))
	req, err := retryablehttp.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("X-Tenant", "a")
	_, err = client.Do(req)
	require.ErrorIs(t, err, retryhttp.ErrRetryDenied)
	st := rt.Status("tenant:a").Total
	assert.Equal(t, [3]uint64{2, 1, 1}, [3]uint64{st.Requests, st.Retries, st.RetriesDenied},
		"two attempts, one retry charged and one denied, all to tenant a")
}

// Budgeted on its own, as before NewClient: it stops at the budget, and
// the call ends with ErrRetryDenied rather than the 503 as a success.
func TestBudgetedStopsWhenTheBudgetIsSpent(t *testing.T) {
	srv, _, calls := downServer(t)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(budgetPolicy))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()
	client := retryingClient(rt, retryhttp.Budgeted(rt))

	resp, err := client.Get(srv.URL)
	require.ErrorIs(t, err, retryhttp.ErrRetryDenied, "as if the retries were spent")
	assert.Nil(t, resp)
	assert.Equal(t, int64(2), calls.Load(), "RetryMax is 10")

	without := retryingClient(rt, retryhttp.CheckRetry)
	_, err = without.Get(srv.URL)
	require.Error(t, err)
	assert.Equal(t, int64(2+11), calls.Load(), "without the budget, every retry reaches the host")
}

// Budgeted keeps CheckRetry's rules: a refusal is not retried, and asks
// the budget nothing.
func TestBudgetedKeepsCheckRetrysRules(t *testing.T) {
	srv, _, calls := downServer(t)
	policy := budgetPolicy
	policy.FailureThreshold = 1
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(policy))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()
	client := retryingClient(rt, retryhttp.Budgeted(rt))
	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, retryhttp.ErrRetryDenied, "the 503 opened the circuit: its retry is denied")
	c := rt.Snapshot()[0].Total
	assert.Equal(t, uint64(1), c.RetriesDenied)

	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "a refusal is not retried")
	assert.Equal(t, int64(1), calls.Load())
	c = rt.Snapshot()[0].Total
	assert.Equal(t, uint64(1), c.Retries+c.RetriesDenied, "and the budget was not asked")
}

// A transport error carries no response: Budgeted finds the host in the
// error and charges its budget.
func TestBudgetedChargesTransportErrorsToTheirHost(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens: connection refused
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(budgetPolicy))
	require.NoError(t, err)
	client := retryingClient(rt, retryhttp.Budgeted(rt))
	_, err = client.Get(url)
	require.Error(t, err)
	st := rt.Snapshot()
	require.Len(t, st, 1)
	assert.Equal(t, uint64(1), st[0].Total.Retries)
	assert.Equal(t, uint64(1), st[0].Total.RetriesDenied)
	assert.Equal(t, uint64(2), st[0].Total.Requests)
}
