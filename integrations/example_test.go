package integrations_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"resty.dev/v3"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/retryhttp"
)

// Retries go above the breaker, and stop at an open circuit.
func Example_retryablehttp() {
	rt, err := httpbreaker.New(nil)
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := retryablehttp.NewClient()
	client.HTTPClient.Transport = rt
	client.CheckRetry = retryhttp.CheckRetry // or retryhttp.Waiter{MaxWait: 5 * time.Second}.CheckRetry
	client.Logger = nil

	rt.Isolate("api.example.com") // for the example: the circuit is open
	_, err = client.Get("https://api.example.com/menu")
	fmt.Println(errors.Is(err, httpbreaker.ErrCircuitOpen))
	// Output: true
}

// httpbreaker as resty's transport breaks per host, under resty's retries;
// resty's own breaker guards the whole client.
func Example_resty() {
	rt, err := httpbreaker.New(nil)
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := resty.New().SetTransport(rt).SetRetryCount(3)
	defer client.Close()

	rt.Isolate("api.example.com")
	_, err = client.R().Get("https://api.example.com/menu")
	fmt.Println(errors.Is(err, httpbreaker.ErrCircuitOpen))
	// Output: true
}

// otelhttp goes outside the breaker, so a refusal is a client span with an
// error (and no upstream span); inside, refusals would leave no trace.
func Example_otelhttp() {
	rt, err := httpbreaker.New(nil)
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: otelhttp.NewTransport(rt)}

	rt.Isolate("api.example.com")
	_, err = client.Get("https://api.example.com/menu")
	fmt.Println(errors.Is(err, httpbreaker.ErrCircuitOpen))
	// Output: true
}
