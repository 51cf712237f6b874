// Command basic is the smallest useful httpbreaker program: wrap an
// http.Client, call a host, and handle a refusal with errors.Is. The host
// here is a local server that always fails, so the circuit opens.
package main

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/httpbreaker/httpbreaker"
)

func main() {
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer flaky.Close()

	rt, err := httpbreaker.New(nil) // defaults: opens after 5 failures, probes after 60s
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close() // closes the idle connections of the pool New made
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}

	for i := 1; i <= 7; i++ {
		resp, err := client.Get(flaky.URL)
		var open *httpbreaker.OpenError
		switch {
		case errors.Is(err, httpbreaker.ErrCircuitOpen) && errors.As(err, &open):
			fmt.Printf("request %d: refused without calling %s; retry after %s\n",
				i, open.Host, open.RetryAt.Format(time.Kitchen))
		case err != nil:
			fmt.Printf("request %d: %v\n", i, err)
		default:
			resp.Body.Close()
			fmt.Printf("request %d: %s\n", i, resp.Status)
		}
	}
}
