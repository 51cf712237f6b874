package httpbreaker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// rawServer is a loopback TCP server whose connections are handed to
// serve, for faults net/http's server will not commit: hanging, resetting,
// cutting a body short.
type rawServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newRawServer(t *testing.T, serve func(net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/" }

func (s *rawServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readRequest consumes the request head so the client is not cut off while
// still writing.
func readRequest(c net.Conn) {
	buf := make([]byte, 4096)
	_, _ = c.Read(buf)
}

// hang accepts and never answers, until the connection is closed.
func hang(c net.Conn) {
	readRequest(c)
	_, _ = io.Copy(io.Discard, c)
}

// resetMidHeaders sends half a status line and resets the connection.
func resetMidHeaders(c net.Conn) {
	readRequest(c)
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-")
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST
	}
	_ = c.Close()
}

// truncatedBody promises 100 bytes and sends 10.
func truncatedBody(c net.Conn) {
	readRequest(c)
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
	_ = c.Close()
}

// closedPort returns the address of a port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr + "/"
}

// oneResult sends req and checks the RoundTripper contract: exactly one of
// a response and an error.
func oneResult(t *testing.T, rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	require.True(t, (resp == nil) != (err == nil), "exactly one of response (%v) and error (%v)", resp, err)
	return resp, err
}

func faultTransport(t *testing.T, opts ...httpbreaker.Option) *httpbreaker.Transport {
	rt := newTransport(t, nil, append([]httpbreaker.Option{httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2})}, opts...)...)
	t.Cleanup(rt.CloseIdleConnections)
	return rt
}

func TestFaultHangingServer(t *testing.T) {
	srv := newRawServer(t, hang)
	rt := faultTransport(t)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url(), nil)
	done := make(chan error, 1)
	go func() {
		_, err := oneResult(t, rt, req)
		done <- err
	}()
	cancel() // the caller gives up: not the host's fault
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, uint64(1), rt.Status(srv.url()).Total.Ignored)
	assert.True(t, rt.IsClosed(srv.url()))

	client := &http.Client{Transport: rt, Timeout: 20 * time.Millisecond}
	for range 2 { // the caller's timeout: the host did not answer in time
		_, err := client.Get(srv.url())
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())
	}
	assert.Equal(t, uint64(2), rt.Status(srv.url()).Total.Failures)
	assert.True(t, rt.IsOpen(srv.url()))
	_, err := client.Get(srv.url())
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
}

func TestFaultResetMidHeaders(t *testing.T) {
	srv := newRawServer(t, resetMidHeaders)
	rt := faultTransport(t)
	for range 2 {
		_, err := oneResult(t, rt, mustRequest(t, http.MethodGet, srv.url()))
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.Canceled)
	}
	assert.Equal(t, uint64(2), rt.Status(srv.url()).Total.Failures, "a reset is the server's failure")
	assert.True(t, rt.IsOpen(srv.url()))
}

func TestFaultTruncatedBodyIsDecidedAtTheHeaders(t *testing.T) {
	srv := newRawServer(t, truncatedBody)
	rt := faultTransport(t)
	for range 3 {
		resp, err := oneResult(t, rt, mustRequest(t, http.MethodGet, srv.url()))
		require.NoError(t, err, "the headers arrived: the caller gets the response")
		_, err = io.ReadAll(resp.Body)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "and finds the body cut short")
		_ = resp.Body.Close()
	}
	st := rt.Status(srv.url())
	assert.Equal(t, uint64(3), st.Total.Successes, "200 at the headers: classified then")
	assert.True(t, rt.IsClosed(srv.url()))
}

func TestFaultRefusedConnection(t *testing.T) {
	url := closedPort(t)
	rt := faultTransport(t)
	for range 2 {
		_, err := oneResult(t, rt, mustRequest(t, http.MethodGet, url))
		var op *net.OpError
		require.ErrorAs(t, err, &op)
	}
	assert.True(t, rt.IsOpen(url))
}

func TestFaultSlowHeadersCountAsSlowCalls(t *testing.T) {
	clock := newClock()
	var step atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		clock.At(time.Duration(step.Add(1)) * time.Hour) // this answer takes an hour on the test's clock
		_, _ = io.WriteString(w, "late")
	}))
	t.Cleanup(srv.Close)
	rt := faultTransport(t, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, SlowCall: time.Minute}))
	for range 2 {
		resp, err := oneResult(t, rt, mustRequest(t, http.MethodGet, srv.URL))
		require.NoError(t, err, "the caller still gets its response")
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		assert.Equal(t, "late", string(body))
	}
	assert.True(t, rt.IsOpen(srv.URL))
}

func TestFault5xxStormOpensAndRecovers(t *testing.T) {
	clock := newClock()
	var storm atomic.Bool
	storm.Store(true)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if storm.Load() {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "storm")
			return
		}
		_, _ = io.WriteString(w, "calm")
	}))
	t.Cleanup(srv.Close)
	rt := faultTransport(t, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 5, ResetTimeout: time.Minute}))
	client := &http.Client{Transport: rt}
	refused := 0
	for range 50 {
		resp, err := client.Get(srv.URL)
		if errors.Is(err, httpbreaker.ErrCircuitOpen) {
			refused++
			continue
		}
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	assert.Equal(t, int64(5), hits.Load(), "the storm reached the server five times")
	assert.Equal(t, 45, refused)
	storm.Store(false)
	clock.At(time.Minute)
	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.True(t, rt.IsClosed(srv.URL))
}
