package httpbreaker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// upstream is a scripted base: mode says how it answers; bodies are per
// path; it records the 5xx bodies it hands out.
type upstream struct {
	mode    atomic.Value // "ok", "500", "reset", "cancel"
	header  http.Header
	swallow []*closeRecorder
	mu      sync.Mutex
}

func newUpstream() *upstream {
	u := &upstream{header: http.Header{}}
	u.mode.Store("ok")
	return u
}

func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	switch u.mode.Load().(string) {
	case "reset":
		return nil, errUpstream
	case "cancel":
		return nil, context.Canceled
	case "500":
		resp := response(req, 500, "")
		body := newBody(strings.Repeat("e", 100))
		u.mu.Lock()
		u.swallow = append(u.swallow, body)
		u.mu.Unlock()
		resp.Body = body
		return resp, nil
	}
	resp := response(req, 200, "fresh "+req.URL.Path)
	for k, v := range u.header {
		resp.Header[k] = v
	}
	resp.Header.Set("Content-Type", "text/plain")
	return resp, nil
}

// fetch GETs url with the given headers and reads the whole body.
func fetch(t *testing.T, rt http.RoundTripper, url string, header ...string) (*http.Response, string, error) {
	t.Helper()
	req := mustRequest(t, http.MethodGet, url)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(body), nil
}

func staleTransport(t *testing.T, base http.RoundTripper, clock *fakeClock, opts ...httpbreaker.Option) *httpbreaker.Transport {
	return newTransport(t, base, append([]httpbreaker.Option{httpbreaker.WithStaleIfError(1 << 10),
		httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Hour})}, opts...)...)
}

func TestStaleIfErrorServesTheLastGoodResponse(t *testing.T) {
	clock := newClock()
	up := newUpstream()
	rt := staleTransport(t, up, clock)
	resp, body, err := fetch(t, rt, host+"/menu")
	require.NoError(t, err)
	assert.Equal(t, "fresh /menu", body)
	assert.Empty(t, resp.Header.Get("Warning"))

	clock.At(30 * time.Second)
	up.mode.Store("500")
	resp, body, err = fetch(t, rt, host+"/menu")
	require.NoError(t, err, "a 5xx is replaced")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "fresh /menu", body)
	assert.Equal(t, []string{`110 - "Response is Stale"`, `111 - "Revalidation Failed"`}, resp.Header.Values("Warning"),
		"stale, and because an attempt failed")
	assert.Equal(t, "30", resp.Header.Get("Age"))
	assert.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
	require.Len(t, up.swallow, 1)
	assert.True(t, up.swallow[0].closed.Load(), "the replaced 5xx is closed")
	assert.Zero(t, up.swallow[0].Reader.(*strings.Reader).Len(), "and drained")

	up.mode.Store("reset")
	clock.At(45 * time.Second)
	resp, body, err = fetch(t, rt, host+"/menu")
	require.NoError(t, err, "a transport failure is replaced; this one opens the circuit")
	assert.Equal(t, "fresh /menu", body)
	assert.Equal(t, "45", resp.Header.Get("Age"))
	require.True(t, rt.IsOpen(host), "the failures still count")

	resp, body, err = fetch(t, rt, host+"/menu")
	require.NoError(t, err, "a refusal is replaced")
	assert.Equal(t, "fresh /menu", body)
	assert.Equal(t, []string{`110 - "Response is Stale"`}, resp.Header.Values("Warning"), "stale; nothing was attempted")

	_, _, err = fetch(t, rt, host+"/other")
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "nothing kept for that URL")
	st := rt.Status(host)
	assert.Equal(t, uint64(2), st.Total.Failures)
	assert.Equal(t, uint64(2), st.Total.Rejected)
}

func TestStaleIfErrorIsNotForTheCallersOwnCancellation(t *testing.T) {
	clock := newClock()
	up := newUpstream()
	rt := staleTransport(t, up, clock)
	_, _, err := fetch(t, rt, host+"/menu")
	require.NoError(t, err)
	up.mode.Store("cancel")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("errgroup: a sibling failed"))
	_, err = rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/menu").WithContext(ctx))
	assert.ErrorIs(t, err, context.Canceled, "the caller gave up: its own error, not a stale answer")

	_, _, err = fetch(t, rt, host+"/menu")
	require.NoError(t, err, "a context.Canceled from below, with the caller still waiting, is the host's failure: stale")
}

func TestStaleIfErrorKeepsOnlyWhatItMay(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(up *upstream)
		fetch   func(t *testing.T, rt http.RoundTripper)
	}{
		{"a body not read to the end", nil, func(t *testing.T, rt http.RoundTripper) {
			resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/menu"))
			require.NoError(t, err)
			buf := make([]byte, 3)
			_, _ = resp.Body.Read(buf)
			_ = resp.Body.Close()
		}},
		{"a request that says no-store", nil, func(t *testing.T, rt http.RoundTripper) {
			_, _, err := fetch(t, rt, host+"/menu", "Cache-Control", "max-age=0, No-Store")
			require.NoError(t, err)
		}},
		{"a response that says no-store", func(up *upstream) { up.header.Set("Cache-Control", "private, no-store") },
			func(t *testing.T, rt http.RoundTripper) {
				_, _, err := fetch(t, rt, host+"/menu")
				require.NoError(t, err)
			}},
		{"a body larger than the whole cache", func(up *upstream) {}, func(t *testing.T, rt http.RoundTripper) {
			_, _, err := fetch(t, rt, host+"/"+strings.Repeat("x", 2000))
			require.NoError(t, err)
		}},
		{"a POST", nil, func(t *testing.T, rt http.RoundTripper) {
			resp, err := rt.RoundTrip(mustRequestBody(t, host+"/menu", io.NopCloser(strings.NewReader("x"))))
			require.NoError(t, err)
			_, _ = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream()
			if tt.prepare != nil {
				tt.prepare(up)
			}
			rt := staleTransport(t, up, newClock())
			tt.fetch(t, rt)
			up.mode.Store("500")
			resp, _, err := fetch(t, rt, host+"/menu")
			require.NoError(t, err)
			assert.Equal(t, 500, resp.StatusCode, "nothing stale to serve")
		})
	}
}

func TestStaleIfErrorEvictsTheLeastRecentlyUsed(t *testing.T) {
	up := newUpstream()
	entry := staleEntrySize(t, "/a") // every entry below but the last has this size
	rt := newTransport(t, up, httpbreaker.WithStaleIfError(int64(3*entry+10)), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
	for _, p := range []string{"/a", "/b", "/c"} {
		_, _, err := fetch(t, rt, host+p)
		require.NoError(t, err)
	}
	up.mode.Store("500")
	_, body, _ := fetch(t, rt, host+"/a") // /a is now the most recently used
	assert.Equal(t, "fresh /a", body)
	up.mode.Store("ok")
	_, _, _ = fetch(t, rt, host+"/"+strings.Repeat("d", entry/2)) // about 2 entries: /b and /c must go
	up.mode.Store("500")
	for p, want := range map[string]int{"/a": 200, "/b": 500, "/c": 500, "/" + strings.Repeat("d", entry/2): 200} {
		resp, _, err := fetch(t, rt, host+p)
		require.NoError(t, err)
		assert.Equal(t, want, resp.StatusCode, p)
	}
}

func TestStaleIfErrorNeverCrossesCredentials(t *testing.T) {
	up := newUpstream()
	rt := staleTransport(t, up, newClock(), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
	_, _, err := fetch(t, rt, host+"/account", "Authorization", "Bearer alice", "Cookie", "session=a")
	require.NoError(t, err)
	up.mode.Store("500")
	for _, creds := range [][]string{
		nil,
		{"Authorization", "Bearer bob", "Cookie", "session=a"},
		{"Authorization", "Bearer alice", "Cookie", "session=b"},
		{"Authorization", "Bearer alice"},
	} {
		resp, _, err := fetch(t, rt, host+"/account", creds...)
		require.NoError(t, err)
		assert.Equal(t, 500, resp.StatusCode, "%v must not see alice's response", creds)
	}
	resp, body, err := fetch(t, rt, host+"/account", "Authorization", "Bearer alice", "Cookie", "session=a")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "fresh /account", body)
}

func TestStaleComesBeforeTheFallback(t *testing.T) {
	up := newUpstream()
	var fallbacks atomic.Int64
	rt := staleTransport(t, up, newClock(), httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
		fallbacks.Add(1)
		return response(req, 203, "fallback"), nil
	}))
	_, _, _ = fetch(t, rt, host+"/menu")
	up.mode.Store("reset")
	_, _, _ = fetch(t, rt, host+"/menu")
	_, _, _ = fetch(t, rt, host+"/menu")
	require.True(t, rt.IsOpen(host))
	_, body, err := fetch(t, rt, host+"/menu")
	require.NoError(t, err)
	assert.Equal(t, "fresh /menu", body)
	assert.Zero(t, fallbacks.Load())
	resp, body, err := fetch(t, rt, host+"/uncached")
	require.NoError(t, err)
	assert.Equal(t, 203, resp.StatusCode)
	assert.Equal(t, "fallback", body)
}

func TestStaleIfErrorConcurrentUse(t *testing.T) {
	up := newUpstream()
	rt := newTransport(t, up, httpbreaker.WithStaleIfError(200), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1 << 20}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 && i%20 == 0 {
					mode := map[bool]string{true: "ok", false: "500"}[i%40 == 0]
					up.mode.Store(mode)
				}
				resp, body, err := fetch(t, rt, host+"/"+strings.Repeat("p", (g+i)%7))
				if err == nil && resp.StatusCode == 200 {
					assert.True(t, strings.HasPrefix(body, "fresh /"), body)
				}
			}
		}()
	}
	wg.Wait()
}

func TestWithStaleIfErrorRejectsBadSizes(t *testing.T) {
	for _, n := range []int64{0, -1} {
		_, err := httpbreaker.New(nil, httpbreaker.WithStaleIfError(n))
		assert.ErrorContains(t, err, "WithStaleIfError")
	}
}

// staleEntrySize is what the upstream's response to path costs the cache.
func staleEntrySize(t *testing.T, path string) int {
	req := mustRequest(t, http.MethodGet, host+path)
	resp, err := newUpstream().RoundTrip(req)
	require.NoError(t, err)
	return int(httpbreaker.StaleEntrySize(req, resp))
}

// One user's data never reaches another through the stale cache: every
// value of every identifying header counts, however it is spelled.
func TestStaleCacheSeparatesCallersByEveryCredential(t *testing.T) {
	tests := []struct {
		name       string
		alice, bob func(h http.Header)
	}{
		{"two Cookie lines", func(h http.Header) { h["Cookie"] = []string{"a=1", "session=alice"} },
			func(h http.Header) { h["Cookie"] = []string{"a=1", "session=bob"} }},
		{"a lower-case key set directly", func(h http.Header) { h["authorization"] = []string{"Bearer alice"} },
			func(h http.Header) { h["authorization"] = []string{"Bearer bob"} }},
		{"X-Api-Key", func(h http.Header) { h.Set("X-Api-Key", "alice") }, func(h http.Header) { h.Set("X-Api-Key", "bob") }},
		{"Proxy-Authorization", func(h http.Header) { h.Set("Proxy-Authorization", "Basic YQ==") },
			func(h http.Header) { h.Set("Proxy-Authorization", "Basic Yg==") }},
		{"a tenant header", func(h http.Header) { h.Set("X-Tenant", "alice") }, func(h http.Header) { h.Set("X-Tenant", "bob") }},
		{"a Vary header", func(h http.Header) { h.Set("Accept-Language", "en") }, func(h http.Header) { h.Set("Accept-Language", "fr") }},
		{"Accept-Encoding", func(h http.Header) { h.Set("Accept-Encoding", "gzip") }, func(h http.Header) {}},
		{"another virtual host", func(h http.Header) {}, func(h http.Header) { h.Set("Host", "other.test") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream()
			up.header.Set("Vary", "Accept-Language")
			rt := staleTransport(t, up, newClock(), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
			send := func(set func(http.Header)) *http.Response {
				req := mustRequest(t, http.MethodGet, host+"/account")
				set(req.Header)
				if h := req.Header.Get("Host"); h != "" {
					req.Host = h
					req.Header.Del("Host")
				}
				resp, err := rt.RoundTrip(req)
				require.NoError(t, err)
				_, _ = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				return resp
			}
			send(tt.alice)
			up.mode.Store("500")
			assert.Equal(t, 500, send(tt.bob).StatusCode, "bob must not get alice's response")
			assert.Equal(t, 200, send(tt.alice).StatusCode, "alice gets hers")
		})
	}
}

func TestStaleCacheKeepsOnlyCompleteRepresentations(t *testing.T) {
	for _, answer := range []string{"304", "206", "vary *"} {
		t.Run(answer, func(t *testing.T) {
			var mode atomic.Value
			mode.Store("ok")
			base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				switch m := mode.Load().(string); m {
				case "304", "206":
					code, _ := strconv.Atoi(m)
					return response(req, code, ""), nil
				case "vary *":
					resp := response(req, 200, "varies")
					resp.Header.Set("Vary", "*")
					return resp, nil
				case "500":
					return response(req, 500, ""), nil
				}
				return response(req, 200, "complete"), nil
			})
			rt := staleTransport(t, base, newClock(), httpbreaker.WithClassifier(httpbreaker.SuccessStatus(200, 206, 304)),
				httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
			_, _, err := fetch(t, rt, host+"/menu")
			require.NoError(t, err)
			mode.Store(answer)
			_, _, err = fetch(t, rt, host+"/menu")
			require.NoError(t, err)
			mode.Store("500")
			resp, body, err := fetch(t, rt, host+"/menu")
			require.NoError(t, err)
			assert.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, "complete", body, "a %s never replaces the kept representation", answer)
		})
	}
}

// A response whose body the caller finished after a newer one's does not
// replace it; Age counts from the response's arrival.
func TestStaleCacheKeepsTheMostRecentResponse(t *testing.T) {
	clock := newClock()
	var n atomic.Int64
	var failing atomic.Bool
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing.Load() {
			return response(req, 500, ""), nil
		}
		return response(req, 200, "response "+strings.Repeat("#", int(n.Add(1)))), nil
	})
	rt := staleTransport(t, base, clock, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
	clock.At(10 * time.Second)
	older, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/menu"))
	require.NoError(t, err)
	clock.At(20 * time.Second)
	newer, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/menu"))
	require.NoError(t, err)
	clock.At(50 * time.Second)
	_, _ = io.ReadAll(newer.Body)
	_, _ = io.ReadAll(older.Body) // finished last, arrived first
	failing.Store(true)
	clock.At(60 * time.Second)
	resp, body, err := fetch(t, rt, host+"/menu")
	require.NoError(t, err)
	assert.Equal(t, "response ##", body, "the newer response is kept")
	assert.Equal(t, "40", resp.Header.Get("Age"), "counted from its arrival at 20s")
}

// The bound counts what an entry holds: headers and key too, not the body
// alone.
func TestStaleCacheBoundCountsHeaders(t *testing.T) {
	var failing atomic.Bool
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing.Load() {
			return response(req, 500, ""), nil
		}
		resp := response(req, 200, "")
		resp.Header.Set("X-Padding", strings.Repeat("h", 4<<10)) // 4 KiB of its own, as from the wire
		return resp, nil
	})
	const bound = 1 << 20
	rt := newTransport(t, base, httpbreaker.WithStaleIfError(bound), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1 << 20}))
	before := heapInUse()
	for i := range 2000 {
		_, _, err := fetch(t, rt, host+"/"+strconv.Itoa(i))
		require.NoError(t, err)
	}
	grown := heapInUse() - before
	runtime.KeepAlive(rt)
	assert.Less(t, grown, int64(2*bound), "2000 empty bodies with 4 KiB headers: %d bytes kept", grown)
	failing.Store(true)
	resp, _, err := fetch(t, rt, host+"/1999")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode, "the latest is still kept")
}

func TestWithCallerHeadersSeparatesCallersByThem(t *testing.T) {
	up := newUpstream()
	rt := staleTransport(t, up, newClock(), httpbreaker.WithCallerHeaders("x-org"),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 100}))
	_, _, err := fetch(t, rt, host+"/menu", "X-Org", "alice")
	require.NoError(t, err)
	up.mode.Store("500")
	resp, _, err := fetch(t, rt, host+"/menu", "X-Org", "bob")
	require.NoError(t, err)
	assert.Equal(t, 500, resp.StatusCode, "another organisation")
	resp, _, err = fetch(t, rt, host+"/menu", "X-Org", "alice")
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)

	for _, bad := range []string{"", "X Org", "x-org:"} {
		_, err := httpbreaker.New(nil, httpbreaker.WithCallerHeaders(bad))
		assert.ErrorContains(t, err, "WithCallerHeaders", "%q", bad)
	}
}

func TestFallbackAnswersRefusals(t *testing.T) {
	base := failingHosts("api.test")
	var sawErr error
	var sawBodyClosed bool
	var body *closeRecorder
	rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
			sawErr = err
			sawBodyClosed = body.closed.Load()
			resp := response(req, 200, "cached menu")
			resp.Header.Set("Warning", `110 - "stale"`)
			return resp, nil
		}))
	body = newBody("x")
	_, _ = rt.RoundTrip(mustRequestBody(t, host, body))
	require.True(t, rt.IsOpen(host))
	calls := base.calls.Load()

	body = newBody("x")
	resp, err := (&http.Client{Transport: rt}).Do(mustRequestBody(t, host, body))
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "cached menu", string(got))
	assert.Equal(t, calls, base.calls.Load(), "the fallback answered; nothing was sent")
	assert.ErrorIs(t, sawErr, httpbreaker.ErrCircuitOpen)
	assert.True(t, sawBodyClosed, "the body is closed before the fallback runs")
}

func TestFallbackThatMisbehaves(t *testing.T) {
	leaked := newBody("x")
	own := errors.New("fallback: no cache")
	tests := []struct {
		name    string
		f       httpbreaker.Fallback
		wantErr error
	}{
		{"nil and nil", func(*http.Request, error) (*http.Response, error) { return nil, nil }, httpbreaker.ErrCircuitOpen},
		{"its own error", func(*http.Request, error) (*http.Response, error) { return nil, own }, own},
		{"both", func(req *http.Request, _ error) (*http.Response, error) {
			resp := response(req, 200, "")
			resp.Body = leaked
			return resp, own
		}, own},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newTransport(t, failingHosts("api.test"), httpbreaker.WithFallback(tt.f),
				httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
			_, _ = get(t, rt, host)
			resp, err := rt.RoundTrip(mustRequest(t, "GET", host))
			assert.Nil(t, resp)
			assert.ErrorIs(t, err, tt.wantErr)
		})
	}
	assert.True(t, leaked.closed.Load(), "a response swallowed with an error is closed")
}
