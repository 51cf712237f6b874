package httpbreaker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// The concurrency cap as users run it: net/http's own transport against
// httptest servers, over HTTP/1.1 and HTTP/2, with default client options.

// overProtocols runs f over HTTP/1.1 and over HTTP/2 (TLS, ALPN), each
// with a fresh net/http transport as the base.
func overProtocols(t *testing.T, handler http.Handler, f func(t *testing.T, srv *httptest.Server, base *http.Transport)) {
	t.Run("HTTP/1.1", func(t *testing.T) {
		srv := httptest.NewServer(handler)
		t.Cleanup(srv.Close)
		base := &http.Transport{}
		t.Cleanup(base.CloseIdleConnections)
		f(t, srv, base)
	})
	t.Run("HTTP/2", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(handler)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		base := srv.Client().Transport.(*http.Transport).Clone()
		t.Cleanup(base.CloseIdleConnections)
		f(t, srv, base)
	})
}

// collect runs the collector until rt has no call to srv in flight, or
// gives up: finalizers run on a goroutine of their own.
func collect(rt *httpbreaker.Transport, key string) {
	for i := 0; i < 100 && rt.Status(key).InFlight > 0; i++ {
		runtime.GC()
		runtime.Gosched()
	}
}

// streaming writes a body in two flushed parts: chunked over HTTP/1.1,
// DATA frames after the headers over HTTP/2.
var streaming = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, strings.Repeat("first part ", 100))
	w.(http.Flusher).Flush()
	_, _ = io.WriteString(w, "last part")
})

// A body dropped unread and unclosed gives its slot back once collected,
// and its connection or stream is closed, under net/http's transport.
func TestAbandonedBodyFreesItsSlotOverRealTransports(t *testing.T) {
	forEachCap(t, func(t *testing.T, policy httpbreaker.Policy) { abandonedBodyFreesItsSlot(t, policy) })
}

// forEachCap runs f with a cap of one call in flight: static, and
// adaptive with a ceiling of one, which holds slots the same way.
func forEachCap(t *testing.T, f func(t *testing.T, policy httpbreaker.Policy)) {
	t.Run("MaxConcurrent", func(t *testing.T) { f(t, httpbreaker.Policy{MaxConcurrent: 1}) })
	t.Run("AdaptiveConcurrency", func(t *testing.T) { f(t, httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 1}) })
}

func abandonedBodyFreesItsSlot(t *testing.T, policy httpbreaker.Policy) {
	overProtocols(t, streaming, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		rt := newTransport(t, base, httpbreaker.WithPolicy(policy))
		client := &http.Client{Transport: rt}
		func() {
			resp, err := client.Get(srv.URL)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, 1, rt.Status(srv.URL).InFlight)
		}() // resp is dropped here, its body neither read nor closed
		collect(rt, srv.URL)
		require.Zero(t, rt.Status(srv.URL).InFlight, "the collector gave the slot back")
		for range 3 {
			resp, err := client.Get(srv.URL)
			require.NoError(t, err, "the next calls are admitted")
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.True(t, strings.HasSuffix(string(body), "last part"))
			require.NoError(t, resp.Body.Close())
		}
		assert.Zero(t, rt.Status(srv.URL).InFlight)
	})
}

// Responses that cannot have a body free their slot at once, whatever
// reader net/http gives them, so a caller that never closes them (as
// client.Head's callers often do) is not refused.
func TestBodilessResponsesFreeTheirSlotAtOnce(t *testing.T) {
	forEachCap(t, bodilessResponsesFreeTheirSlotAtOnce)
}

func bodilessResponsesFreeTheirSlotAtOnce(t *testing.T, policy httpbreaker.Policy) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/empty":
		default:
			_, _ = io.WriteString(w, "a body")
		}
	})
	overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		rt := newTransport(t, base, httpbreaker.WithPolicy(policy))
		client := &http.Client{Transport: rt}
		for _, c := range []struct{ method, path string }{
			{http.MethodHead, "/"}, {http.MethodGet, "/204"}, {http.MethodGet, "/304"},
			{http.MethodGet, "/empty"}, {http.MethodHead, "/204"}, {http.MethodGet, "/"},
		} {
			req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err, "%s %s: not refused, though no earlier body was closed", c.method, c.path)
			if c.path == "/" && c.method == http.MethodGet {
				assert.Equal(t, 1, rt.Status(srv.URL).InFlight, "a body holds its slot")
				require.NoError(t, resp.Body.Close())
			}
			assert.Zero(t, rt.Status(srv.URL).InFlight, "%s %s", c.method, c.path)
		}
	})
}

// Trailers, announced or not, reach the caller of a held body once it is
// read to its end.
func TestHeldBodyKeepsTrailers(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Announced", "yes")
		w.Header().Set(http.TrailerPrefix+"X-Unannounced", "also")
	})
	overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
		resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, "yes", resp.Trailer.Get("X-Announced"))
		assert.Equal(t, "also", resp.Trailer.Get("X-Unannounced"))
		assert.Zero(t, rt.Status(srv.URL).InFlight)
	})
}

// Behind httputil.ReverseProxy, every proxied call gives its slot back,
// trailers pass through, and a body the client drops ends the call.
func TestCapBehindReverseProxy(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return
		}
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, strings.Repeat("x", 10_000))
		w.Header().Set("X-Sum", "10000")
	})
	overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
		target, err := url.Parse(srv.URL)
		require.NoError(t, err)
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = rt
		front := httptest.NewServer(proxy)
		t.Cleanup(front.Close)
		for range 3 {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req, err := http.NewRequest(method, front.URL, nil)
				require.NoError(t, err)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", method, body)
				if method == http.MethodGet {
					assert.Len(t, body, 10_000)
					assert.Equal(t, "10000", resp.Trailer.Get("X-Sum"))
				}
			}
		}
		assert.Zero(t, rt.Status(srv.URL).InFlight)
	})
}

// A host whose calls hold slots is never forgotten to make room: in a
// crawler the slow host is the least recently used, and forgetting it
// would let the next call find a fresh count. When every host that could
// make room is busy, a new host's call goes through without a circuit.
func TestEvictionKeepsHostsWithCallsInFlight(t *testing.T) {
	slow := httptest.NewServer(streaming)
	t.Cleanup(slow.Close)
	servers := make([]*httptest.Server, 3)
	for i := range servers {
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}))
		t.Cleanup(servers[i].Close)
	}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	rt := newTransport(t, base, httpbreaker.WithMaxHosts(2),
		httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	client := &http.Client{Transport: rt}
	call := func(url string) error {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			err = resp.Body.Close()
		}
		return err
	}

	held, err := client.Get(slow.URL) // the slow host's body, held open
	require.NoError(t, err)
	for _, srv := range servers { // newer hosts push the slow one to the back
		require.NoError(t, call(srv.URL))
	}
	require.True(t, rt.Tracked(slow.URL), "the busy host is kept")
	assert.Equal(t, 1, rt.Status(slow.URL).InFlight)
	assert.ErrorIs(t, call(slow.URL), httpbreaker.ErrOverloaded, "its cap still counts the held body")
	assert.LessOrEqual(t, len(rt.Snapshot()), 2)

	solo := newTransport(t, base, httpbreaker.WithMaxHosts(1),
		httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	soloClient := &http.Client{Transport: solo}
	busy, err := soloClient.Get(slow.URL)
	require.NoError(t, err)
	resp, err := soloClient.Get(servers[0].URL)
	require.NoError(t, err, "no room: sent without a circuit, not refused")
	require.NoError(t, resp.Body.Close())
	assert.False(t, solo.Tracked(servers[0].URL))
	assert.Equal(t, []string{solo.Status(slow.URL).Host}, hosts(solo))

	require.NoError(t, held.Body.Close())
	require.NoError(t, busy.Body.Close())
	assert.Zero(t, rt.Status(slow.URL).InFlight)
	require.NoError(t, call(servers[0].URL))
}
