package httpbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/httpbreaker/httpbreaker"
)

// A failing host trips its circuit; after that, requests to it are refused
// at once with an error that matches ErrCircuitOpen.
func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database down", http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt, Timeout: 5 * time.Second}

	for i := 1; i <= 4; i++ {
		resp, err := client.Get(upstream.URL + "/menu")
		switch {
		case errors.Is(err, httpbreaker.ErrCircuitOpen):
			fmt.Printf("call %d: refused, circuit open\n", i)
		case err != nil:
			fmt.Printf("call %d: %v\n", i, err)
		default:
			resp.Body.Close()
			fmt.Printf("call %d: %s\n", i, resp.Status)
		}
	}
	fmt.Println("open:", rt.IsOpen(upstream.URL))
	// Output:
	// call 1: 503 Service Unavailable
	// call 2: 503 Service Unavailable
	// call 3: 503 Service Unavailable
	// call 4: refused, circuit open
	// open: true
}

// The last good answer while the host is down: while the circuit is open,
// a fallback answers with the last good body instead of an error. The body
// is kept behind a lock: a server's handlers fetch, and the fallback
// reads, at once. (WithStaleIfError keeps every last good response for
// you; this is the hand-made one.)
func ExampleWithFallback() {
	var mu sync.Mutex
	var lastGood string // the app records it after each good fetch
	fallback := func(req *http.Request, err error) (*http.Response, error) {
		mu.Lock()
		body := lastGood
		mu.Unlock()
		if body == "" {
			return nil, err
		}
		return &http.Response{
			StatusCode: http.StatusOK,
			Status:     "200 OK (stale)",
			Header:     http.Header{"Warning": {`110 - "Response is Stale"`}},
			Body:       io.NopCloser(strings.NewReader(body)),
			Request:    req,
		}, nil
	}
	var down atomic.Bool
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "soup, bread")
	}))
	defer upstream.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithFallback(fallback),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}

	fetch := func() {
		resp, err := client.Get(upstream.URL)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Warning") == "" {
			mu.Lock()
			lastGood = string(body)
			mu.Unlock()
		}
		fmt.Printf("%s: %q\n", resp.Status, body)
	}
	fetch()
	down.Store(true)
	fetch() // fails and opens the circuit
	fetch() // refused: the fallback answers
	// Output:
	// 200 OK: "soup, bread"
	// 500 Internal Server Error: ""
	// 200 OK (stale): "soup, bread"
}

// A fallback learns why a call was refused from its error: an open
// circuit (Isolated set while an operator isolates the host) is an
// *OpenError, a closed circuit shedding load an *OverloadError.
func ExampleFallback() {
	why := func(req *http.Request, err error) (*http.Response, error) {
		var open *httpbreaker.OpenError
		switch {
		case errors.As(err, &open) && open.Isolated:
			return nil, fmt.Errorf("isolated until cleared (%w)", err)
		case errors.As(err, &open):
			return nil, fmt.Errorf("down, a probe at %s (%w)", open.RetryAt.Format(time.TimeOnly), err)
		case errors.Is(err, httpbreaker.ErrOverloaded):
			return nil, fmt.Errorf("busy, try again now or elsewhere (%w)", err)
		}
		return nil, err
	}
	var failing atomic.Bool
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	rt, err := httpbreaker.New(nil, httpbreaker.WithFallback(why),
		httpbreaker.WithClock(func() time.Time { return at }),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute, MaxConcurrent: 1}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}
	call := func() {
		resp, err := client.Get(upstream.URL)
		if err != nil {
			fmt.Println(strings.SplitN(errors.Unwrap(err).Error(), " (", 2)[0]) // the fallback's words
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Status)
	}

	held, _ := client.Get(upstream.URL) // its body holds the only slot
	call()
	held.Body.Close()
	rt.Isolate(upstream.URL)
	call()
	rt.ClearState(upstream.URL)
	failing.Store(true)
	call() // fails, and opens the circuit
	call()
	// Output:
	// busy, try again now or elsewhere
	// isolated until cleared
	// 502 Bad Gateway
	// down, a probe at 09:01:00
}

// Real APIs answer 204 and 304 too; SuccessStatus lists what succeeds.
func ExampleSuccessStatus() {
	classify := httpbreaker.SuccessStatus(200, 204, 304)
	for _, code := range []int{200, 204, 304, 404, 503} {
		fmt.Println(code, classify(&http.Response{StatusCode: code}, nil))
	}
	// Output:
	// 200 success
	// 204 success
	// 304 success
	// 404 failure
	// 503 failure
}

// A classifier that holds only the host's own trouble against it: 5xx, 429
// and 408 fail, other statuses succeed, and transport errors are treated as
// by DefaultClassifier (the caller's own cancellation is ignored).
func ExampleClassifier() {
	serverTrouble := func(resp *http.Response, err error) httpbreaker.Outcome {
		if err != nil {
			return httpbreaker.DefaultClassifier(nil, err)
		}
		switch code := resp.StatusCode; {
		case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
			return httpbreaker.Failure
		}
		return httpbreaker.Success
	}
	rt, err := httpbreaker.New(nil, httpbreaker.WithClassifier(serverTrouble))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	for _, code := range []int{200, 404, 408, 429, 502} {
		fmt.Println(code, serverTrouble(&http.Response{StatusCode: code}, nil))
	}
	// Output:
	// 200 success
	// 404 success
	// 408 failure
	// 429 failure
	// 502 failure
}

// Listeners hear every transition, PyBreaker-style; an injected clock steps
// through the reset timeout without sleeping.
func ExampleWithOnStateChange() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var failing atomic.Bool
	failing.Store(true)
	kitchen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "oven on fire", http.StatusBadGateway)
			return
		}
		io.WriteString(w, "soup")
	}))
	defer kitchen.Close()
	rt, err := httpbreaker.New(nil,
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: 30 * time.Second}),
		httpbreaker.WithClock(func() time.Time { return now }),
		httpbreaker.WithOnStateChange(func(host string, from, to httpbreaker.State) {
			fmt.Printf("kitchen: %s -> %s\n", from, to)
		}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}
	get := func() error {
		resp, err := client.Get(kitchen.URL + "/menu")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	get()
	get()
	var open *httpbreaker.OpenError
	if errors.As(get(), &open) {
		fmt.Println("refused until", open.RetryAt.Format(time.TimeOnly))
	}
	now = now.Add(30 * time.Second)
	failing.Store(false)
	get()
	fmt.Println(rt.State(kitchen.URL))
	// Output:
	// kitchen: closed -> open
	// refused until 12:00:30
	// kitchen: open -> half-open
	// kitchen: half-open -> closed
	// closed
}

// Trip at 50% failures over 30 seconds once 20 calls were seen, beside the
// consecutive rule; honour Retry-After up to 5 minutes; double the open time
// after each failed probe, up to 10 minutes; count calls slower than 2s as
// failures.
func ExamplePolicy() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	inventory := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1)%2 == 0 { // every other call fails: a 50% failure rate, never 5 in a row
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer inventory.Close()
	rt, err := httpbreaker.New(nil,
		httpbreaker.WithClock(func() time.Time { return now }),
		httpbreaker.WithPolicy(httpbreaker.Policy{
			Window:          30 * time.Second,
			MinimumRequests: 20,
			FailureRatio:    0.5,
			SlowCall:        2 * time.Second,
			ResetTimeout:    time.Minute,
			MaxResetTimeout: 10 * time.Minute,
			MaxRetryAfter:   5 * time.Minute,
		}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}
	for i := 1; i <= 25; i++ {
		resp, err := client.Get(inventory.URL + "/items")
		var open *httpbreaker.OpenError
		if errors.As(err, &open) {
			fmt.Printf("call %d refused, retry at %s\n", i, open.RetryAt.Format(time.TimeOnly))
			break
		}
		resp.Body.Close()
		now = now.Add(time.Second)
	}
	fmt.Println("upstream calls:", calls.Load())
	// Output:
	// call 21 refused, retry at 12:01:19
	// upstream calls: 20
}

// NewClient wraps an existing client's transport, keeping its timeout, jar
// and redirect policy; ServerErrorClassifier suits a REST API, where a 201
// or a 404 says nothing about the host's health.
func ExampleNewClient() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer upstream.Close()

	client, rt, err := httpbreaker.NewClient(&http.Client{Timeout: 5 * time.Second},
		httpbreaker.WithClassifier(httpbreaker.ServerErrorClassifier),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	for _, path := range []string{"/orders", "/missing", "/missing", "/missing"} {
		resp, err := client.Post(upstream.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	fmt.Println("timeout kept:", client.Timeout, "- circuit:", rt.State(upstream.URL))
	// Output:
	// /orders 201
	// /missing 404
	// /missing 404
	// /missing 404
	// timeout kept: 5s - circuit: closed
}

// WithKey gives each tenant a circuit of its own on one shared host;
// WithoutBreaker lets a health check through an open circuit.
func ExampleWithKey() {
	var down atomic.Bool
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() && r.Header.Get("X-Tenant") == "a" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer upstream.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	call := func(ctx context.Context, tenant string) string {
		req, _ := http.NewRequestWithContext(httpbreaker.WithKey(ctx, "tenant-"+tenant), http.MethodGet, upstream.URL, nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return "refused"
		}
		resp.Body.Close()
		return resp.Status
	}
	down.Store(true)
	fmt.Println("a:", call(context.Background(), "a"))
	fmt.Println("a:", call(context.Background(), "a"))
	fmt.Println("b:", call(context.Background(), "b"))
	fmt.Println("a, health check:", call(httpbreaker.WithoutBreaker(context.Background()), "a"))
	fmt.Println("circuits:", rt.State("tenant-a"), rt.State("tenant-b"))
	// Output:
	// a: 503 Service Unavailable
	// a: refused
	// b: 200 OK
	// a, health check: 503 Service Unavailable
	// circuits: open closed
}

// A concurrency cap per host: while one download is under way, the next
// call to the same host is refused at once, and the circuit stays closed.
func ExamplePolicy_maxConcurrent() {
	finish := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "the first part, ")
		w.(http.Flusher).Flush()
		<-finish
		_, _ = io.WriteString(w, "the rest")
	}))
	defer upstream.Close()

	client, rt, err := httpbreaker.NewClient(nil, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()

	download, err := client.Get(upstream.URL) // headers in, body still coming: it holds the slot
	if err != nil {
		panic(err)
	}
	_, err = client.Get(upstream.URL)
	fmt.Println("second call overloaded:", errors.Is(err, httpbreaker.ErrOverloaded))
	st := rt.Status(upstream.URL)
	fmt.Println(st.State, "shedding:", st.Shedding, "in flight:", st.InFlight)

	close(finish)
	body, _ := io.ReadAll(download.Body) // read to the end: the slot is free
	_ = download.Body.Close()
	fmt.Println(string(body))
	fmt.Println("in flight:", rt.Status(upstream.URL).InFlight)
	// Output:
	// second call overloaded: true
	// closed shedding: true in flight: 1
	// the first part, the rest
	// in flight: 0
}

// Background work marks its requests Sheddable: when the host is
// overloaded and the throttle refuses calls, theirs go first.
func ExampleWithCriticality() {
	ctx := httpbreaker.WithCriticality(context.Background(), httpbreaker.Sheddable)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example.com/prefetch", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(httpbreaker.CriticalityFrom(req.Context()))
	// Output: sheddable
}

// With AdaptiveConcurrency the cap on calls in flight is not a guess: a
// new host starts at the ceiling (MaxConcurrent), its first ten answers
// move the limit to twice the concurrency they saw, and from then on the
// limit follows the host's latency — down to what it serves without a
// queue when calls start to wait, up again while they do not.
func ExamplePolicy_adaptiveConcurrency() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()

	client, rt, err := httpbreaker.NewClient(nil, httpbreaker.WithPolicy(httpbreaker.Policy{
		AdaptiveConcurrency: true, MaxConcurrent: 200, MinConcurrent: 4,
	}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	get := func() {
		resp, err := client.Get(upstream.URL)
		if err != nil {
			panic(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	get()
	fmt.Println("limit at first:", rt.Status(upstream.URL).Limit)
	for range 9 {
		get() // one at a time
	}
	fmt.Println("after ten answers, one at a time:", rt.Status(upstream.URL).Limit, "(2, raised to the floor)")
	// Output:
	// limit at first: 200
	// after ten answers, one at a time: 4 (2, raised to the floor)
}

// A retry layer asks AllowRetry before each retry: with a retry budget a
// failing host gets its calls plus a share, never RetryMax times them.
func ExampleTransport_AllowRetry() {
	var calls atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, RetryBudget: 0.2, MinRetries: 1, FailureThreshold: 100,
	}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}

	for range 10 { // ten calls, each retried up to 3 times while the budget allows
		for attempt := 0; ; attempt++ {
			req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode < 500 {
					break
				}
			}
			if attempt == 3 || !rt.AllowRetry(req) {
				break
			}
		}
	}
	total := rt.Status(upstream.URL).Total
	fmt.Println("upstream calls for 10 calls:", calls.Load())
	fmt.Println("retries allowed:", total.Retries, "denied:", total.RetriesDenied)
	// Output:
	// upstream calls for 10 calls: 13
	// retries allowed: 3 denied: 10
}

// Do guards a call that is not HTTP — a database, a queue, a gRPC backend
// — with the same circuits, rules, status and Store as requests: here a
// database that is down.
func ExampleTransport_Do() {
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	errDown := errors.New("connection refused")
	query := func(ctx context.Context) error { return errDown } // db.QueryRowContext(ctx, …).Scan(…)

	for i := range 5 {
		err := rt.Do(context.Background(), "orders-db", query)
		if errors.Is(err, httpbreaker.ErrCircuitOpen) {
			fmt.Printf("query %d: refused, not sent\n", i+1)
			continue
		}
		fmt.Printf("query %d: %v\n", i+1, err)
	}
	fmt.Println("orders-db:", rt.State("orders-db"))
	// Output:
	// query 1: connection refused
	// query 2: connection refused
	// query 3: connection refused
	// query 4: refused, not sent
	// query 5: refused, not sent
	// orders-db: open
}

// Allow is the two-step form, for a call whose outcome is known later
// than its function returns — a stream, a message awaiting its ack: done
// must be called once, on every path.
func ExampleTransport_Allow() {
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	ctx := context.Background()

	done, err := rt.Allow(ctx, "queue")
	if err != nil {
		panic(err)
	}
	_, err = rt.Allow(ctx, "queue") // the first call holds the only slot
	fmt.Println("second call:", err)
	done(httpbreaker.Success) // the message was acknowledged
	fmt.Println("in flight after done:", rt.Status("queue").InFlight)
	// Output:
	// second call: httpbreaker: "queue" overloaded, MaxConcurrent calls in flight
	// in flight after done: 0
}
