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
// Keys that look like routes, set by WithKey, are inspected and steered by
// exactly the key: State, Status, Tracked, Isolate and ClearState do not
// cut them at / ? # @ or :.
func TestRouteKeysAreSteeredExactly(t *testing.T) {
	for _, key := range []string{"orders-api/v2/checkout", "search?q=x", "docs#top", "ops@billing", "billing:eu", "Orders/V2"} {
		t.Run(key, func(t *testing.T) {
			up := newFakeBase(func(string) int { return http.StatusInternalServerError })
			rt := newTransport(t, up, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
			keyed := func() error {
				req := mustRequest(t, http.MethodGet, host).WithContext(httpbreaker.WithKey(context.Background(), key))
				resp, err := rt.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				return err
			}
			require.NoError(t, keyed()) // a 500: the key's circuit opens
			assert.True(t, rt.IsOpen(key))
			assert.True(t, rt.Tracked(key))
			assert.Equal(t, key, rt.Status(key).Host)
			assert.Equal(t, uint64(1), rt.Status(key).Total.Failures)
			assert.Len(t, rt.Snapshot(), 1, "no other circuit made by looking")

			rt.ClearState(key)
			assert.True(t, rt.IsClosed(key), "ClearState reached the key's circuit")
			up.code = func(string) int { return http.StatusOK }
			require.NoError(t, keyed())

			rt.Isolate(key)
			assert.True(t, rt.Status(key).Isolated)
			var oe *httpbreaker.OpenError
			require.ErrorAs(t, keyed(), &oe, "the key's own circuit refuses")
			assert.Equal(t, key, oe.Host)
			assert.Len(t, rt.Snapshot(), 1, "Isolate made no circuit of its own")
			rt.ClearState(key)
			require.NoError(t, keyed())
		})
	}
}

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
