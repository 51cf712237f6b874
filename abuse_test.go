package httpbreaker_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

func TestManyDistinctHostsStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("200k hosts: skipped in -short")
	}
	rt := newTransport(t, newOKBase())
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for i := range 200_000 {
		req := &http.Request{Method: http.MethodGet, Header: http.Header{},
			URL: &url.URL{Scheme: "http", Host: fmt.Sprintf("crawl-%d.test", i)}}
		_, err := rt.RoundTrip(req)
		require.NoError(t, err)
	}
	after := heap()
	assert.LessOrEqual(t, len(rt.Snapshot()), httpbreaker.DefaultMaxHosts)
	ceiling := uint64(httpbreaker.DefaultMaxHosts) * 1024 // a generous 1 KiB per tracked host
	assert.Less(t, int64(after)-int64(before), int64(ceiling), "heap grew by %d bytes", after-before)
	runtime.KeepAlive(rt)
}

func TestKeysAndErrorsCarryNoSecrets(t *testing.T) {
	var logged []string
	rt := newTransport(t, newFakeBase(func(string) int { return 500 }),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithOnStateChange(func(host string, _, _ httpbreaker.State) { logged = append(logged, host) }))
	secret := "http://alice:s3cret@API.test/path?token=t0ken#frag"
	for range 2 {
		req := mustRequest(t, http.MethodGet, secret)
		req.Header.Set("Authorization", "Bearer hdr-secret")
		_, err := (&http.Client{Transport: rt}).Do(req)
		if err != nil {
			var open *httpbreaker.OpenError
			require.ErrorAs(t, err, &open)
			for _, leak := range []string{"s3cret", "t0ken", "hdr-secret", "alice"} {
				assert.NotContains(t, open.Error(), leak)
				assert.NotContains(t, open.Host, leak)
			}
		}
	}
	require.Len(t, rt.Snapshot(), 1)
	assert.Equal(t, "api.test", rt.Snapshot()[0].Host)
	assert.Equal(t, []string{"api.test"}, logged)
	_, err := rt.RoundTrip(mustRequest(t, "BREW", secret))
	assert.NotContains(t, err.Error(), "s3cret")
	assert.NotContains(t, err.Error(), "t0ken")
}

func TestUnreadBodyHoldsNoProbeSlot(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	status.Store(500)
	rt := newTransport(t, statusFor(&status), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second, SuccessThreshold: 2}))
	_, _ = get(t, rt, host)
	clock.At(time.Second)
	status.Store(200)
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host)) // the probe: its body is never read or closed
	require.NoError(t, err)
	require.NotNil(t, resp)
	code, err := get(t, rt, host)
	require.NoError(t, err, "the slot came back when the headers did")
	assert.Equal(t, 200, code)
	assert.True(t, rt.IsClosed(host))
}

// countingReader records how much of it was read.
type countingReader struct {
	closeRecorder
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.closeRecorder.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func TestSwallowedBodiesAreDrainedWithABound(t *testing.T) {
	big := &countingReader{closeRecorder: closeRecorder{Reader: strings.NewReader(strings.Repeat("x", 1<<20))}}
	failing := false
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing {
			resp := response(req, 503, "")
			resp.Body = big
			return resp, nil
		}
		return response(req, 200, "good"), nil
	})
	rt := newTransport(t, base, httpbreaker.WithStaleIfError(1<<10))
	_, body, err := fetch(t, rt, host+"/x")
	require.NoError(t, err)
	require.Equal(t, "good", body)
	failing = true
	resp, body, err := fetch(t, rt, host+"/x")
	require.NoError(t, err)
	assert.Equal(t, "good", body, "the stale copy")
	assert.NotEmpty(t, resp.Header.Get("Warning"))
	assert.True(t, big.closed.Load(), "the swallowed 503 is closed")
	assert.LessOrEqual(t, big.read.Load(), int64(64<<10), "and drained only so far")
	assert.Positive(t, big.read.Load())
	_, _ = io.Copy(io.Discard, big)
}

// A panic in the base transport, the classifier, a listener or the
// fallback reaches the caller and leaves the breaker consistent: no probe
// slot lost, later transitions delivered, the request body closed.
func TestPanicsReachTheCallerAndLeaveTheBreakerConsistent(t *testing.T) {
	tests := []struct {
		name string
		// when is where the panic strikes: "probe", "trip" or "refusal".
		when string
		opts func(explode *atomic.Bool, base *atomic.Int64) []httpbreaker.Option
		base func(explode *atomic.Bool, status *atomic.Int64) http.RoundTripper
	}{
		{name: "base", when: "probe", base: func(explode *atomic.Bool, status *atomic.Int64) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if explode.Load() {
					panic("base exploded")
				}
				return response(req, int(status.Load()), ""), nil
			})
		}},
		{name: "classifier", when: "probe", opts: func(explode *atomic.Bool, _ *atomic.Int64) []httpbreaker.Option {
			return []httpbreaker.Option{httpbreaker.WithClassifier(func(resp *http.Response, err error) httpbreaker.Outcome {
				if explode.Load() {
					panic("classifier exploded")
				}
				return httpbreaker.DefaultClassifier(resp, err)
			})}
		}},
		{name: "listener", when: "trip", opts: func(explode *atomic.Bool, _ *atomic.Int64) []httpbreaker.Option {
			return []httpbreaker.Option{httpbreaker.WithOnStateChange(func(string, httpbreaker.State, httpbreaker.State) {
				if explode.CompareAndSwap(true, false) {
					panic("listener exploded")
				}
			})}
		}},
		{name: "fallback", when: "refusal", opts: func(explode *atomic.Bool, _ *atomic.Int64) []httpbreaker.Option {
			return []httpbreaker.Option{httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
				if explode.Load() {
					panic("fallback exploded")
				}
				return nil, err
			})}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			var explode atomic.Bool
			var status atomic.Int64
			status.Store(500)
			var base http.RoundTripper = statusFor(&status)
			if tt.base != nil {
				base = tt.base(&explode, &status)
			}
			opts := []httpbreaker.Option{httpbreaker.WithClock(clock.Now),
				httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second})}
			if tt.opts != nil {
				opts = append(opts, tt.opts(&explode, &status)...)
			}
			var heard transitionLog
			rt := newTransport(t, base, append(opts, httpbreaker.WithOnStateChange(heard.listen))...)
			panics := func() {
				t.Helper()
				assert.PanicsWithValue(t, tt.name+" exploded", func() { _, _ = get(t, rt, host) }, "the panic reaches the caller")
			}

			if tt.when == "trip" {
				explode.Store(true)
				panics()
			} else {
				_, _ = get(t, rt, host)
			}
			require.True(t, rt.IsOpen(host), "the opening happened, whatever panicked after it")
			if tt.when == "refusal" {
				explode.Store(true)
				body := newBody("x")
				assert.PanicsWithValue(t, "fallback exploded", func() { _, _ = rt.RoundTrip(mustRequestBody(t, host, body)) })
				assert.True(t, body.closed.Load(), "the body was closed before the fallback ran")
				assert.Equal(t, uint64(1), rt.Status(host).Total.Rejected)
				explode.Store(false)
			}

			clock.At(time.Second)
			if tt.when == "probe" {
				explode.Store(true)
				panics()
				explode.Store(false)
				require.True(t, rt.IsHalfOpen(host), "the probe's slot was given back, not its result counted")
				assert.Equal(t, uint64(1), rt.Status(host).Total.Ignored, "the lost probe counts as ignored")
			}
			status.Store(200)
			code, err := get(t, rt, host)
			require.NoError(t, err, "a probe is admitted")
			assert.Equal(t, 200, code)
			assert.True(t, rt.IsClosed(host))
			assert.Subset(t, heard.get(), []string{"api.test: open -> half-open", "api.test: half-open -> closed"},
				"later transitions are delivered")
		})
	}
}
