package httpbreaker_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// WithKey puts a request on the circuit it names, over WithKeyFunc and the
// host; requests without it keep theirs.
func TestWithKeyChoosesTheCircuit(t *testing.T) {
	up := newFakeBase(func(string) int { return 500 })
	rt := newTransport(t, up, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}),
		httpbreaker.WithKeyFunc(func(*http.Request) string { return "by-func" }))
	tenant := func(name string) *http.Request {
		return mustRequest(t, http.MethodGet, host).WithContext(httpbreaker.WithKey(context.Background(), name))
	}
	for range 2 {
		_, err := rt.RoundTrip(tenant("tenant-a"))
		require.NoError(t, err)
	}
	assert.True(t, rt.IsOpen("tenant-a"), "tenant a's circuit opened")
	_, err := rt.RoundTrip(tenant("tenant-a"))
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	_, err = rt.RoundTrip(tenant("tenant-b"))
	assert.NoError(t, err, "tenant b's circuit is its own")
	_, err = get(t, rt, host)
	assert.NoError(t, err, "a request without WithKey keeps the key func's circuit")
	assert.True(t, rt.IsClosed("by-func"))

	ctx := httpbreaker.WithKey(context.Background(), "")
	assert.Equal(t, context.Background(), ctx, "an empty key changes nothing")
}

// WithoutBreaker: never refused, never counted, never cached; the method
// table still applies.
func TestWithoutBreakerBypassesTheCircuit(t *testing.T) {
	up := newUpstream()
	rt := newTransport(t, up, httpbreaker.WithStaleIfError(1<<20), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	bypass := func(method string) *http.Request {
		return mustRequest(t, method, host+"/health").WithContext(httpbreaker.WithoutBreaker(context.Background()))
	}
	up.mode.Store("500")
	_, _ = get(t, rt, host)
	require.True(t, rt.IsOpen(host))
	before := rt.Status(host).Total

	up.mode.Store("ok")
	resp, err := rt.RoundTrip(bypass(http.MethodGet))
	require.NoError(t, err, "never refused")
	assert.Equal(t, 200, resp.StatusCode)
	_ = resp.Body.Close()
	assert.Equal(t, before, rt.Status(host).Total, "never counted")
	assert.True(t, rt.IsOpen(host), "and changes nothing")

	up.mode.Store("500")
	resp, err = rt.RoundTrip(bypass(http.MethodGet))
	require.NoError(t, err)
	assert.Equal(t, 500, resp.StatusCode, "never served from the stale cache")
	_ = resp.Body.Close()
	_, err = rt.RoundTrip(bypass("BREW"))
	assert.ErrorIs(t, err, httpbreaker.ErrInvalidMethod)
}

// NewClient keeps Timeout, Jar and CheckRedirect, wraps base's transport,
// and leaves base as it was.
func TestNewClient(t *testing.T) {
	jar, _ := cookiejar.New(nil)
	redirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	up := newFakeBase(func(string) int { return 200 })
	base := &http.Client{Transport: up, Timeout: 3 * time.Second, Jar: jar, CheckRedirect: redirect}
	client, rt, err := httpbreaker.NewClient(base, httpbreaker.WithMaxHosts(10))
	require.NoError(t, err)
	assert.Same(t, rt, client.Transport)
	assert.Same(t, up, base.Transport, "base is never changed")
	assert.Equal(t, 3*time.Second, client.Timeout)
	assert.Same(t, jar, client.Jar)
	assert.NotNil(t, client.CheckRedirect)
	resp, err := client.Get(host)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, int64(1), up.calls.Load(), "through base's transport")

	for _, base := range []*http.Client{nil, {}} {
		client, rt, err := httpbreaker.NewClient(base)
		require.NoError(t, err)
		assert.Same(t, rt, client.Transport, "httpbreaker's default base")
	}
	_, _, err = httpbreaker.NewClient(nil, httpbreaker.WithMaxHosts(0))
	assert.ErrorContains(t, err, "WithMaxHosts")
}
