package retryhttp_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/retryhttp"
)

// Retries belong above the breaker, and stop as soon as it refuses: the
// upstream sees the calls that tripped the circuit, no more.
func ExampleCheckRetry() {
	var calls atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := retryablehttp.NewClient()
	client.HTTPClient.Transport = rt
	client.CheckRetry = retryhttp.CheckRetry
	client.RetryMax = 10
	client.RetryWaitMin, client.RetryWaitMax = time.Millisecond, time.Millisecond
	client.Logger = nil
	defer client.HTTPClient.CloseIdleConnections()

	_, err = client.Get(upstream.URL)
	fmt.Println("refused:", errors.Is(err, httpbreaker.ErrCircuitOpen))
	fmt.Println("upstream calls:", calls.Load())
	// Output:
	// refused: true
	// upstream calls: 3
}

// With a retry budget, retries come out of the host's share: a degraded
// host gets a fifth more calls at most (plus a floor per window), not
// RetryMax times more. NewClient wires the client over the Transport and
// charges each retry it sends.
func ExampleNewClient() {
	var calls atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%3 == 0 { // a third of the calls fail
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer upstream.Close()

	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, RetryBudget: 0.2, MinRetries: 1, FailureThreshold: 50,
	}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := retryhttp.NewClient(rt)
	client.RetryMax = 3
	client.RetryWaitMin, client.RetryWaitMax = time.Millisecond, time.Millisecond
	client.Logger = nil
	defer client.HTTPClient.CloseIdleConnections()

	for range 30 {
		resp, err := client.Get(upstream.URL)
		if err == nil {
			resp.Body.Close()
		}
	}
	total := rt.Snapshot()[0].Total
	fmt.Println("retries allowed:", total.Retries, "of", total.Retries+total.RetriesDenied, "asked")
	fmt.Println("upstream calls for 30 gets:", calls.Load())
	// Output:
	// retries allowed: 7 of 12 asked
	// upstream calls for 30 gets: 37
}
