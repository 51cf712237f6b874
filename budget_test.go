package httpbreaker_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// The retry budget: what AllowRetry allows, refuses and counts.

var budgeted = httpbreaker.Policy{Window: 10 * time.Second, RetryBudget: 0.2, MinRetries: 1, FailureThreshold: 100}

// retryUntilDenied asks AllowRetry for url's request until it says no,
// sending each allowed retry (a retry is an ordinary call), and returns
// how many it allowed.
func retryUntilDenied(t *testing.T, rt *httpbreaker.Transport, url string) int {
	t.Helper()
	n := 0
	for rt.AllowRetry(mustRequest(t, http.MethodGet, url)) {
		n++
		_, _ = get(t, rt, url)
		require.Less(t, n, 1000, "AllowRetry never says no")
	}
	return n
}

// Each call that was not a retry earns RetryBudget retries; MinRetries
// come on top; both are spent once, and the refusals are counted.
func TestRetryBudgetIsAShareOfTheCalls(t *testing.T) {
	status := &atomic.Int64{}
	status.Store(http.StatusOK)
	clock := newClock()
	rt := newTransport(t, statusFor(status), httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(budgeted))
	for range 50 {
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
	}
	status.Store(http.StatusInternalServerError)
	_, _ = get(t, rt, "http://api.test/") // the call to retry
	// 51 calls earn ⌊1 + 0.2·51⌋ = 11 retries.
	assert.Equal(t, 11, retryUntilDenied(t, rt, "http://api.test/"))
	c := rt.Status("api.test").Total
	assert.Equal(t, uint64(11), c.Retries)
	assert.Equal(t, uint64(1), c.RetriesDenied)
	assert.Equal(t, uint64(62), c.Requests, "the retries were sent as ordinary calls")
	assert.False(t, rt.AllowRetry(mustRequest(t, http.MethodGet, "http://api.test/")))
	assert.Equal(t, uint64(2), rt.Status("api.test").Total.RetriesDenied)
}

// A quiet host still has MinRetries per window (10 by default), and the
// window forgets old retries.
func TestRetryBudgetFloorRefillsWithTheWindow(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusInternalServerError }),
		httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
			Window: 10 * time.Second, RetryBudget: 0.1, FailureThreshold: 100, FailureRatio: 1,
		}))
	_, _ = get(t, rt, "http://quiet.test/")
	assert.Equal(t, httpbreaker.DefaultMinRetries, retryUntilDenied(t, rt, "http://quiet.test/"))
	clock.Advance(11 * time.Second)
	_, _ = get(t, rt, "http://quiet.test/")
	assert.Equal(t, httpbreaker.DefaultMinRetries, retryUntilDenied(t, rt, "http://quiet.test/"), "a new window, a new floor")
}

// A retry the circuit would refuse is denied and counted, whatever the
// budget: open, isolated, or half-open (its probe slots go to fresh
// calls). Nothing is sent, and no probe slot is taken.
func TestRetryDeniedWhileTheCircuitRefuses(t *testing.T) {
	clock := newClock()
	status := &atomic.Int64{}
	status.Store(http.StatusInternalServerError)
	base := statusFor(status)
	policy := budgeted
	policy.FailureThreshold, policy.ResetTimeout = 1, time.Second
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	_, _ = get(t, rt, "http://api.test/")
	require.True(t, rt.IsOpen("api.test"))
	req := mustRequest(t, http.MethodGet, "http://api.test/")
	assert.False(t, rt.AllowRetry(req), "open")
	clock.Advance(time.Second)
	assert.False(t, rt.AllowRetry(req), "half-open")
	require.True(t, rt.IsHalfOpen("api.test"))
	status.Store(http.StatusOK)
	_, err := get(t, rt, "http://api.test/")
	require.NoError(t, err, "the probe slot was not taken")
	require.True(t, rt.IsClosed("api.test"))
	assert.True(t, rt.AllowRetry(req), "closed again")
	rt.Isolate("api.test")
	assert.False(t, rt.AllowRetry(req), "isolated")
	c := rt.Status("api.test").Total
	assert.Equal(t, uint64(1), c.Retries)
	assert.Equal(t, uint64(3), c.RetriesDenied)
}

// A host shedding load takes no retries: they would only add to it.
func TestRetryDeniedWhileTheHostSheds(t *testing.T) {
	g := newGate(http.StatusOK)
	policy := budgeted
	policy.MaxConcurrent = 1
	rt := newTransport(t, g, httpbreaker.WithPolicy(policy))
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, "http://api.test/"))
		if assert.NoError(t, err) {
			_ = resp.Body.Close()
		}
	}()
	<-g.entered
	_, err := get(t, rt, "http://api.test/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	assert.False(t, rt.AllowRetry(mustRequest(t, http.MethodGet, "http://api.test/")))
	close(g.release)
	<-done
	assert.Equal(t, uint64(1), rt.Status("api.test").Total.RetriesDenied)
}

func TestAllowRetryEdges(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusOK }), httpbreaker.WithPolicy(budgeted))
	assert.False(t, rt.AllowRetry(nil), "nil request")
	assert.False(t, rt.AllowRetry(&http.Request{Method: http.MethodGet}), "no URL")
	assert.False(t, rt.AllowRetry(mustRequest(t, http.MethodGet, "http:///path")), "no host")
	assert.True(t, rt.AllowRetry(mustRequest(t, http.MethodGet, "http://never.test/")), "a host never called")
	assert.Equal(t, uint64(1), rt.Status("never.test").Total.Retries, "tracked, as its retry's call will be, and counted")
	req := mustRequest(t, http.MethodGet, "http://api.test/")
	req = req.WithContext(httpbreaker.WithoutBreaker(req.Context()))
	assert.True(t, rt.AllowRetry(req), "WithoutBreaker")
	var zero httpbreaker.Transport
	assert.False(t, zero.AllowRetry(mustRequest(t, http.MethodGet, "http://api.test/")), "a Transport not made by New")

	keyed := mustRequest(t, http.MethodGet, "http://api.test/")
	keyed = keyed.WithContext(httpbreaker.WithKey(context.Background(), "payments"))
	_, err := rt.RoundTrip(keyed)
	require.NoError(t, err)
	require.True(t, rt.AllowRetry(keyed))
	assert.Equal(t, uint64(1), rt.Status("payments").Total.Retries, "WithKey's circuit pays")
}

// A host the bound forgets takes its budget with it. AllowRetry answered
// yes for it, counted nowhere, as for a host never called: a crawler's
// churn, forgetting each host before its retry, walked around the budget.
// Now the host comes back with a new budget, its floor spent and counted
// like any other's.
func TestAllowRetryOnAHostTheBoundForgot(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusInternalServerError }),
		httpbreaker.WithMaxHosts(2), httpbreaker.WithPolicy(httpbreaker.Policy{RetryBudget: 0.1, MinRetries: 1, FailureThreshold: 1000}))
	allowed := 0
	const rounds = 5
	for range rounds {
		_, _ = get(t, rt, "http://crawled.test/")
		for _, other := range []string{"http://b.test/", "http://c.test/", "http://d.test/"} {
			_, _ = get(t, rt, other)
		}
		require.False(t, rt.Tracked("crawled.test"), "the bound forgot the host before its retry")
		for range 3 {
			if rt.AllowRetry(mustRequest(t, http.MethodGet, "http://crawled.test/")) {
				allowed++
			}
		}
		st := rt.Status("crawled.test").Total
		assert.Equal(t, uint64(1), st.Retries, "its floor, counted")
		assert.Equal(t, uint64(2), st.RetriesDenied)
	}
	assert.Equal(t, rounds, allowed, "one retry per return: the floor, not every retry asked")
}

// Without RetryBudget, AllowRetry still asks the circuit and counts
// nothing.
func TestAllowRetryWithoutABudget(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusInternalServerError }), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	_, _ = get(t, rt, "http://api.test/")
	for range 100 {
		require.True(t, rt.AllowRetry(mustRequest(t, http.MethodGet, "http://api.test/")))
	}
	_, _ = get(t, rt, "http://api.test/")
	assert.False(t, rt.AllowRetry(mustRequest(t, http.MethodGet, "http://api.test/")))
	c := rt.Status("api.test").Total
	assert.Zero(t, c.Retries+c.RetriesDenied)
}

func TestClearStateRefillsTheRetryBudget(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusOK }), httpbreaker.WithPolicy(budgeted))
	_, _ = get(t, rt, "http://api.test/")
	first := retryUntilDenied(t, rt, "http://api.test/")
	require.Positive(t, first)
	rt.ClearState("api.test")
	assert.Positive(t, retryUntilDenied(t, rt, "http://api.test/"))
}

func TestRetryBudgetPolicyIsValidated(t *testing.T) {
	for _, p := range []httpbreaker.Policy{
		{RetryBudget: -0.1},
		{Window: time.Second, RetryBudget: 1.5},
		{Window: time.Second, MinRetries: 3},
		{Window: time.Second, RetryBudget: 0.2, MinRetries: -1},
	} {
		_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(p))
		assert.Error(t, err, "%+v", p)
	}
}

// AllowRetry racing the traffic and every control call: each answer is
// counted once, and the budget never allows more than it holds.
func TestAllowRetryUnderConcurrency(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusOK }), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Hour, RetryBudget: 0.1, MinRetries: 5, FailureThreshold: 100}))
	_, _ = get(t, rt, "http://api.test/") // tracked: a host never called is never counted
	const goroutines, perG = 8, 300
	var asked, allowed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 3 {
			case 0:
				_ = rt.Snapshot()
			case 1:
				_ = rt.Status("api.test")
			case 2:
				clock.Advance(time.Millisecond)
			}
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				if (g+i)%4 == 0 {
					asked.Add(1)
					if rt.AllowRetry(mustRequest(t, http.MethodGet, "http://api.test/")) {
						allowed.Add(1)
					}
					continue
				}
				_, _ = get(t, rt, "http://api.test/")
			}
		}()
	}
	wg.Wait()
	close(stop)
	c := rt.Status("api.test").Total
	assert.Equal(t, uint64(asked.Load()), c.Retries+c.RetriesDenied)
	assert.Equal(t, uint64(allowed.Load()), c.Retries)
	assert.LessOrEqual(t, c.Retries, uint64(5)+uint64(0.1*float64(c.Requests)), "never more than the budget")
}

// Without a budget, AllowRetry reads only what a plain host has while its
// circuit trips and recovers under it.
func TestAllowRetryRacesTransitionsWithoutABudget(t *testing.T) {
	clock := newClock()
	var n atomic.Int64
	rt := newTransport(t, newFakeBase(func(string) int {
		if n.Add(1)%3 == 0 {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	}), httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Millisecond}))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				url := fmt.Sprintf("http://h%d.test/", (g+i)%5)
				if i%2 == 0 {
					_ = rt.AllowRetry(mustRequest(t, http.MethodGet, url))
				} else {
					_, _ = get(t, rt, url)
				}
				if g == 0 {
					clock.Advance(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	assert.Len(t, rt.Snapshot(), 5)
}

// AllowRetry says no, uncounted, to a retry RoundTrip would refuse
// outright (a method outside the table) or whose caller has gone; CanRetry
// answers as AllowRetry would, withdraws nothing, and counts its no.
func TestAllowRetryRefusesWhatCouldNeverBeSentAndCanRetryOnlyLooks(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return http.StatusServiceUnavailable }), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{RetryBudget: 0.1, MinRetries: 2, FailureThreshold: 100}))
	_, _ = get(t, rt, "http://api.test/")
	req := mustRequest(t, http.MethodGet, "http://api.test/")

	bad := req.Clone(req.Context())
	bad.Method = "BREW"
	assert.False(t, rt.AllowRetry(bad), "a method outside the table")
	assert.False(t, rt.CanRetry(bad))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, rt.AllowRetry(req.WithContext(ctx)), "a caller gone")
	assert.Equal(t, uint64(0), rt.Status("api.test").Total.RetriesDenied, "neither counted")

	for range 10 {
		require.True(t, rt.CanRetry(req), "looking withdraws nothing")
	}
	assert.Equal(t, uint64(0), rt.Status("api.test").Total.Retries)
	assert.True(t, rt.AllowRetry(req))
	assert.True(t, rt.AllowRetry(req))
	assert.False(t, rt.CanRetry(req), "the floor of 2 is spent")
	assert.False(t, rt.AllowRetry(req))
	total := rt.Status("api.test").Total
	assert.Equal(t, [2]uint64{2, 2}, [2]uint64{total.Retries, total.RetriesDenied}, "each no counted once")
}
