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
