//go:build !race

package httpbreaker_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// The closed path and an open refusal must not allocate: a count, not a
// timing, so it is a test. (The race detector allocates, hence the tag.)
func TestHotPathsDoNotAllocate(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://api.test:443/menu", nil)
	require.NoError(t, err)
	rt := newTransport(t, newOKBase())
	_, _ = rt.RoundTrip(req) // first use tracks the host
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = rt.RoundTrip(req) }), "closed path")

	refusing := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	_, _ = refusing.RoundTrip(req)
	require.True(t, refusing.IsOpen("api.test"))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = refusing.RoundTrip(req) }), "open refusal")

	// Overload protection: the throttle's closed path and its refusals
	// allocate nothing either.
	var n atomic.Int64 // three failures in four: throttled
	throttled := newTransport(t, newFakeBase(func(string) int {
		if n.Add(1)%4 == 1 { // the first call succeeds: never all failures
			return 200
		}
		return 500
	}), httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, Throttle: 1.5, FailureRatio: 1, MinimumRequests: 1, FailureThreshold: 1 << 20,
	}))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = throttled.RoundTrip(req) }), "throttling, refusals included")
	require.NotZero(t, throttled.Status("api.test").Total.Shed)
	healthy := newTransport(t, newOKBase(), httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Minute, Throttle: 1.5}))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = healthy.RoundTrip(req) }), "throttle on, healthy host")
}

// A host new to the Transport at the bound, named as a crawler's hosts
// are, costs one allocation: its breaker, with its key inside (#36).
func TestANewHostAtTheBoundAllocatesOnce(t *testing.T) {
	const max, runs = 1000, 500
	rt := newTransport(t, newOKBase(), httpbreaker.WithMaxHosts(max))
	reqs := make([]*http.Request, max+runs+1)
	for i := range reqs {
		var err error
		reqs[i], err = http.NewRequest(http.MethodGet, fmt.Sprintf("http://n%d.example.test/", 100000+i), nil)
		require.NoError(t, err)
	}
	for _, req := range reqs[:max] {
		_, _ = rt.RoundTrip(req)
	}
	next := max
	allocs := testing.AllocsPerRun(runs, func() {
		_, _ = rt.RoundTrip(reqs[next])
		next++
	})
	assert.LessOrEqual(t, allocs, 1.0)
}
