package httpbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

func failingHosts(down ...string) *fakeBase {
	return newFakeBase(func(h string) int {
		for _, d := range down {
			if strings.EqualFold(h, d) {
				return 500
			}
		}
		return 200
	})
}

func TestInvalidMethod(t *testing.T) {
	base := failingHosts()
	log := &transitionLog{}
	rt := newTransport(t, base, httpbreaker.WithOnStateChange(log.listen),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	for _, method := range []string{"PURGE", "get", "BREW"} {
		body := newBody("x")
		req, err := http.NewRequest(method, "http://api.test/", body)
		require.NoError(t, err)
		resp, err := rt.RoundTrip(req)
		assert.Nil(t, resp)
		require.ErrorIs(t, err, httpbreaker.ErrInvalidMethod, method)
		assert.NotErrorIs(t, err, httpbreaker.ErrCircuitOpen)
		assert.Contains(t, err.Error(), `"`+method+`"`)
		assert.True(t, body.closed.Load(), "body closed")
	}
	assert.Zero(t, base.calls.Load(), "nothing was sent")
	assert.Empty(t, log.get(), "no breaker changed")

	req := &http.Request{URL: &url.URL{Scheme: "http", Host: "api.test"}} // Method "" means GET
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()

	_, err = (&http.Client{Transport: rt}).Do(mustRequest(t, "PURGE", "http://api.test/"))
	assert.ErrorIs(t, err, httpbreaker.ErrInvalidMethod, "through http.Client")
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	return req
}

func TestWithMethods(t *testing.T) {
	base := failingHosts()
	rt := newTransport(t, base, httpbreaker.WithMethods("GET", "PURGE", "GET"))
	for method, allowed := range map[string]bool{"GET": true, "PURGE": true, "": true, "POST": false, "purge": false} {
		req := mustRequest(t, http.MethodGet, "http://api.test/")
		req.Method = method
		resp, err := rt.RoundTrip(req)
		if allowed {
			require.NoError(t, err, method)
			_ = resp.Body.Close()
		} else {
			assert.ErrorIs(t, err, httpbreaker.ErrInvalidMethod, method)
		}
	}
	for _, bad := range [][]string{{}, {""}, {"GET", "BAD METHOD"}, {"G(ET"}, {"GÉT"}} {
		_, err := httpbreaker.New(nil, httpbreaker.WithMethods(bad...))
		assert.Error(t, err, "%q", bad)
	}
	// A standard method in lower case would refuse every request that
	// spells it right: New says so instead.
	for _, misspelled := range []string{"get", "Post", "delete"} {
		_, err := httpbreaker.New(nil, httpbreaker.WithMethods("PURGE", misspelled))
		assert.ErrorContains(t, err, "case-sensitive", misspelled)
	}
	_, err := httpbreaker.New(nil, httpbreaker.WithMethods("purge"))
	assert.NoError(t, err, "a method no standard names may be spelled as the server expects")

	// GET is answered apart from the rest of the table: a table without it
	// refuses GET, spelled out or empty, on a host already tracked too.
	noGet := newTransport(t, base, httpbreaker.WithMethods("POST"))
	post := mustRequest(t, http.MethodPost, "http://api.test/")
	resp, err := noGet.RoundTrip(post)
	require.NoError(t, err)
	_ = resp.Body.Close()
	for _, method := range []string{"GET", ""} {
		req := mustRequest(t, http.MethodGet, "http://api.test/")
		req.Method = method
		_, err := noGet.RoundTrip(req)
		assert.ErrorIs(t, err, httpbreaker.ErrInvalidMethod, "%q", method)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	tests := []struct {
		name string
		opt  httpbreaker.Option
		want string
	}{
		{"negative threshold", httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: -1}), "FailureThreshold"},
		{"negative timeout", httpbreaker.WithPolicy(httpbreaker.Policy{ResetTimeout: -time.Second}), "ResetTimeout"},
		{"negative probes", httpbreaker.WithPolicy(httpbreaker.Policy{HalfOpenMaxRequests: -2}), "HalfOpenMaxRequests"},
		{"negative successes", httpbreaker.WithPolicy(httpbreaker.Policy{SuccessThreshold: -3}), "SuccessThreshold"},
		{"huge threshold", httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1 << 40}), "FailureThreshold"},
		{"nil option", nil, "option 0"},
		{"nil classifier", httpbreaker.WithClassifier(nil), "WithClassifier"},
		{"nil key func", httpbreaker.WithKeyFunc(nil), "WithKeyFunc"},
		{"nil fallback", httpbreaker.WithFallback(nil), "WithFallback"},
		{"nil listener", httpbreaker.WithOnStateChange(nil), "WithOnStateChange"},
		{"nil clock", httpbreaker.WithClock(nil), "WithClock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := httpbreaker.New(nil, tt.opt)
			assert.Nil(t, rt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "httpbreaker: "), err.Error())
		})
	}
}

func TestBadRequestsGetErrorsNotPanics(t *testing.T) {
	base := failingHosts()
	rt := newTransport(t, base)

	resp, err := rt.RoundTrip(nil)
	assert.Nil(t, resp)
	assert.ErrorContains(t, err, "nil request")

	body := newBody("x")
	resp, err = rt.RoundTrip(&http.Request{Method: "POST", Body: body})
	assert.Nil(t, resp)
	assert.ErrorContains(t, err, "nil URL")
	assert.True(t, body.closed.Load())

	for _, u := range []string{"/relative/path", "http:opaque", "file:///etc/passwd"} {
		body := newBody("x")
		req, perr := http.NewRequest("POST", u, body)
		require.NoError(t, perr)
		resp, err = rt.RoundTrip(req)
		assert.Nil(t, resp)
		assert.ErrorContains(t, err, "no host", u)
		assert.True(t, body.closed.Load(), u)
	}
	assert.Zero(t, base.calls.Load())

	var zero httpbreaker.Transport
	body = newBody("x")
	resp, err = zero.RoundTrip(&http.Request{Method: "POST", URL: &url.URL{Host: "a"}, Body: body})
	assert.Nil(t, resp)
	assert.ErrorContains(t, err, "New")
	assert.True(t, body.closed.Load())
	assert.Equal(t, httpbreaker.StateClosed, zero.State("a"))
	zero.ClearState("a")
	zero.CloseIdleConnections()
}

func TestNeverMutatesTheRequest(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	status.Store(500)
	rt := newTransport(t, statusFor(&status), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	for i := range 3 { // closed, tripping and refused
		req, err := http.NewRequest("PUT", "https://User:pw@API.test:443/menu?x=1#f", strings.NewReader("body"))
		require.NoError(t, err)
		req.Header.Set("X-Request", "1")
		want := req.Clone(context.Background())
		wantURL := *req.URL
		resp, err := rt.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		assert.Equal(t, wantURL, *req.URL, "call %d", i)
		assert.Equal(t, want.Header, req.Header)
		assert.Equal(t, want.Method, req.Method)
		assert.Equal(t, want.Host, req.Host)
		assert.Equal(t, want.ContentLength, req.ContentLength)
	}
}

func TestSwallowedResponsesAreClosed(t *testing.T) {
	swallowed := newBody(strings.Repeat("x", 10000))
	both := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp := response(req, 200, "")
		resp.Body = swallowed
		return resp, errUpstream
	})
	rt := newTransport(t, both)
	resp, err := rt.RoundTrip(mustRequest(t, "GET", host))
	assert.Nil(t, resp, "never a response and an error together")
	assert.ErrorIs(t, err, errUpstream)
	assert.True(t, swallowed.closed.Load())

	neither := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
	rt = newTransport(t, neither, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	resp, err = rt.RoundTrip(mustRequest(t, "GET", host))
	assert.Nil(t, resp)
	assert.ErrorContains(t, err, "neither a response nor an error")
	assert.True(t, rt.IsOpen(host), "a base that answers nothing has failed")
}

type idleCloser struct {
	fakeBase
	closed int
}

func (c *idleCloser) CloseIdleConnections() { c.closed++ }

func TestCloseIdleConnectionsIsForwarded(t *testing.T) {
	base := &idleCloser{}
	rt := newTransport(t, base)
	(&http.Client{Transport: rt}).CloseIdleConnections()
	assert.Equal(t, 1, base.closed)
	newTransport(t, roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("unused") })).
		CloseIdleConnections() // a base without it: nothing happens
}

func mustRequestBody(t *testing.T, url string, body io.ReadCloser) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	require.NoError(t, err)
	return req
}

func TestEndToEndThroughHTTPClient(t *testing.T) {
	var healthy atomic.Bool
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if !healthy.Load() {
			http.Error(w, "database down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "menu")
	}))
	defer srv.Close()
	clock := newClock()
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: time.Minute}))
	client := &http.Client{Transport: rt}
	defer client.CloseIdleConnections()

	for range 3 {
		resp, err := client.Post(srv.URL, "text/plain", bytes.NewReader([]byte("order")))
		require.NoError(t, err)
		assert.Equal(t, 503, resp.StatusCode)
		_ = resp.Body.Close()
	}
	_, err := client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.Equal(t, int64(3), hits.Load())

	healthy.Store(true)
	clock.At(time.Minute)
	resp, err := client.Get(srv.URL + "/menu")
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "menu", string(got))
	assert.True(t, rt.IsClosed(srv.URL))
}

func TestWithHTTPMockHosts(t *testing.T) {
	mock := httpmock.NewMockTransport()
	mock.RegisterResponder("GET", "https://menu.test/today", httpmock.NewStringResponder(200, "soup"))
	mock.RegisterResponder("GET", "https://flaky.test/today", httpmock.NewStringResponder(502, "bad gateway"))
	mock.RegisterResponder("GET", "https://reset.test/today", httpmock.NewErrorResponder(errUpstream))
	rt := newTransport(t, mock, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	client := &http.Client{Transport: rt}
	for range 3 {
		for _, h := range []string{"menu", "flaky", "reset"} {
			resp, err := client.Get("https://" + h + ".test/today")
			if err == nil {
				_ = resp.Body.Close()
			}
		}
	}
	assert.True(t, rt.IsClosed("menu.test"))
	assert.True(t, rt.IsOpen("flaky.test"))
	assert.True(t, rt.IsOpen("reset.test"))
	info := mock.GetCallCountInfo()
	assert.Equal(t, 3, info["GET https://menu.test/today"])
	assert.Equal(t, 2, info["GET https://flaky.test/today"], "the third call was refused")
	assert.Equal(t, 2, info["GET https://reset.test/today"])
}

// net/http's client tolerates a response without Body or Header from a
// RoundTripper; so must everything here, then and when the caller reads.
func TestResponseWithoutBodyOrHeaderFromTheBase(t *testing.T) {
	for _, code := range []int{200, 503} {
		base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: code, Request: req}, nil
		})
		rt := newTransport(t, base, httpbreaker.WithStaleIfError(1<<20),
			httpbreaker.WithPolicy(httpbreaker.Policy{MaxRetryAfter: time.Minute, Window: time.Minute, SlowCall: time.Minute}))
		client := &http.Client{Transport: rt}
		for range 3 {
			resp, err := client.Get("http://api.test/menu")
			require.NoError(t, err)
			_, err = io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, code, resp.StatusCode)
		}
		resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, "http://api.test/menu"))
		require.NoError(t, err)
		assert.NotNil(t, resp.Header)
		_, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
	}
}

// A base that would fail later is refused by New: a nil *http.Transport
// (net/http panics at the first request, "transport is nil"), a nil func,
// and a Transport, which would count every call twice; NewClient over a
// client already wrapped likewise.
func TestNewRefusesBasesThatWouldFailLater(t *testing.T) {
	for name, base := range map[string]http.RoundTripper{
		"nil *http.Transport": (*http.Transport)(nil),
		"nil func":            roundTripFunc(nil),
	} {
		_, err := httpbreaker.New(base)
		assert.ErrorContains(t, err, "nil", name)
	}
	rt := newTransport(t, nil)
	_, err := httpbreaker.New(rt)
	assert.ErrorContains(t, err, "*httpbreaker.Transport already")
	client, _, err := httpbreaker.NewClient(nil)
	require.NoError(t, err)
	_, _, err = httpbreaker.NewClient(client)
	assert.ErrorContains(t, err, "*httpbreaker.Transport already", "NewClient twice over one client")
}

// connCounter is a server that counts the connections it accepted.
func connCounter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// Close releases the pool New made for a nil base: its idle connection
// is closed (the next call dials anew; it stayed open, with its goroutines,
// until CloseIdleConnections), while a base the caller passed keeps its
// idle connections: it is the caller's.
func TestCloseReleasesThePoolItMade(t *testing.T) {
	fetch := func(rt http.RoundTripper, url string) {
		resp, err := (&http.Client{Transport: rt}).Get(url)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
	}

	srv, conns := connCounter(t)
	owned, err := httpbreaker.New(nil)
	require.NoError(t, err)
	fetch(owned, srv.URL)
	require.NoError(t, owned.Close())
	fetch(owned, srv.URL) // still works, on a new connection
	assert.Equal(t, int64(2), conns.Load(), "the idle connection of New's own pool was closed")
	require.NoError(t, owned.Close())
	require.NoError(t, owned.Close(), "Close twice")

	srv, conns = connCounter(t)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	passed := newTransport(t, base)
	fetch(passed, srv.URL)
	require.NoError(t, passed.Close())
	fetch(passed, srv.URL)
	assert.Equal(t, int64(1), conns.Load(), "a base the caller passed keeps its idle connection")
}
