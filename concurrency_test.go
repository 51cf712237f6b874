package httpbreaker_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

func TestMaxConcurrentCapsCallsInFlight(t *testing.T) {
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 2}))
	send := func() (*http.Response, error) {
		return rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
	}
	first, err := send()
	require.NoError(t, err)
	second, err := send()
	require.NoError(t, err)
	assert.Equal(t, 2, rt.Status(host).InFlight, "unread bodies hold their slots")

	body := newBody("x")
	_, err = rt.RoundTrip(mustRequestBody(t, host+"/", body))
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	var overload *httpbreaker.OverloadError
	require.ErrorAs(t, err, &overload)
	assert.False(t, overload.Throttled)
	assert.True(t, body.closed.Load(), "a refused request's body is closed")
	assert.Equal(t, int64(2), base.calls.Load(), "refused at once, not sent")
	assert.True(t, rt.IsClosed(host))
	assert.True(t, rt.Status(host).Shedding)

	require.NoError(t, first.Body.Close())
	assert.Equal(t, 1, rt.Status(host).InFlight, "Close gives the slot back")
	require.NoError(t, first.Body.Close(), "twice is harmless")
	assert.Equal(t, 1, rt.Status(host).InFlight)
	_, err = io.ReadAll(second.Body)
	require.NoError(t, err)
	assert.Zero(t, rt.Status(host).InFlight, "reading to EOF gives it back")
	_ = second.Body.Close()

	base.status.Store(0)
	_, err = send()
	require.Error(t, err)
	assert.Zero(t, rt.Status(host).InFlight, "an error gives it back")

	base.status.Store(http.StatusNoContent)
	noBody := newTransport(t, roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp := response(req, http.StatusNoContent, "")
		resp.Body = http.NoBody
		return resp, nil
	}), httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	for range 3 {
		_, err := noBody.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
		require.NoError(t, err, "a response without a body frees its slot at once")
	}
}

// A body dropped without Close gives its slot back when collected.
func TestAbandonedBodyReleasesItsSlot(t *testing.T) {
	rt := newTransport(t, newScripted(), httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	func() {
		_, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
		require.NoError(t, err)
	}()
	require.Equal(t, 1, rt.Status(host).InFlight)
	for i := 0; i < 100 && rt.Status(host).InFlight > 0; i++ {
		runtime.GC() // finalizers run on their own goroutine: let it
		runtime.Gosched()
	}
	assert.Zero(t, rt.Status(host).InFlight)
}

// A slow download holds its slot until the body ends; real server, real
// client, default options.
func TestSlowBodyHoldsItsSlot(t *testing.T) {
	finish := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "first part ")
		w.(http.Flusher).Flush()
		<-finish
		_, _ = io.WriteString(w, "last part")
	}))
	defer srv.Close()
	client, rt, err := httpbreaker.NewClient(nil, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	require.NoError(t, err)
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	buf := make([]byte, len("first part "))
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	assert.Equal(t, 1, rt.Status(srv.URL).InFlight, "headers are in, the body is not")
	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded, "http.Client keeps the error matchable")

	close(finish)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "last part", string(rest))
	assert.Zero(t, rt.Status(srv.URL).InFlight)
	require.NoError(t, resp.Body.Close())
	resp, err = client.Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
}

// readWriteBody is a 101 Switching Protocols body: a connection.
type readWriteBody struct {
	io.Reader
	bytes.Buffer
}

func (*readWriteBody) Close() error { return nil }

func (b *readWriteBody) Write(p []byte) (int, error) { return b.Buffer.Write(p) }

func (b *readWriteBody) Read(p []byte) (int, error) { return b.Reader.Read(p) }

func TestHeldSwitchedProtocolBodyStaysWritable(t *testing.T) {
	conn := &readWriteBody{Reader: strings.NewReader("frames")}
	rt := newTransport(t, roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp := response(req, http.StatusSwitchingProtocols, "")
		resp.Body = conn
		return resp, nil
	}), httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}),
		httpbreaker.WithClassifier(func(*http.Response, error) httpbreaker.Outcome { return httpbreaker.Success }))
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
	require.NoError(t, err)
	w, ok := resp.Body.(io.ReadWriteCloser)
	require.True(t, ok, "httputil.ReverseProxy needs an io.ReadWriteCloser")
	_, err = w.Write([]byte("hello"))
	require.NoError(t, err)
	assert.Equal(t, "hello", conn.Buffer.String())
	require.NoError(t, w.Close())
	assert.Zero(t, rt.Status(host).InFlight)
}

// The cap applies to probes: a probe it refuses gives its probe slot back.
func TestMaxConcurrentRefusesProbesAndGivesTheirSlotsBack(t *testing.T) {
	clock := newClock()
	g := newGate(http.StatusInternalServerError)
	rt := newTransport(t, g, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 1, HalfOpenMaxRequests: 2, MaxConcurrent: 1,
	}))
	var wg sync.WaitGroup
	call := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = get(t, rt, host+"/")
		}()
		<-g.entered
	}
	call()
	g.release <- struct{}{}
	wg.Wait()
	require.True(t, rt.IsOpen(host))

	for round := range 2 {
		clock.At(time.Duration(round+1) * 2 * time.Minute)
		require.True(t, rt.IsHalfOpen(host))
		call() // a probe, in flight, holding the only slot
		_, err := get(t, rt, host+"/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded, "round %d: the breaker admits a second probe, the cap refuses it", round)
		g.release <- struct{}{} // the probe fails: open again
		wg.Wait()
		require.True(t, rt.IsOpen(host))
	}
}

// A probe the fleet refuses (another member holds its lease) was never
// sent: its concurrency slot comes back at once.
func TestProbeRefusedByTheFleetGivesItsSlotBack(t *testing.T) {
	clock := newClock()
	store := newMemStore()
	base := newScripted()
	base.status.Store(http.StatusServiceUnavailable)
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithStore(store),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, MaxConcurrent: 1}))
	defer rt.Close()
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	require.True(t, rt.IsOpen(host))
	_, ok, err := store.AcquireProbe(context.Background(), "api.test", 1) // another member's probe
	require.NoError(t, err)
	require.True(t, ok)

	clock.At(2 * time.Minute)
	for range 3 {
		_, err = get(t, rt, host+"/")
		require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "the fleet's probe slot is taken")
		assert.Zero(t, rt.Status(host).InFlight, "the refused probe's slot is free")
	}
}

// A panicking base gives its slot back at once; a panicking classifier
// leaves the response it was judging to the collector, which frees it.
func TestPanicsGiveSlotsBack(t *testing.T) {
	panicking := newTransport(t, roundTripFunc(func(*http.Request) (*http.Response, error) { panic("base") }),
		httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	for range 2 {
		assert.Panics(t, func() { _, _ = panicking.RoundTrip(mustRequest(t, http.MethodGet, host+"/")) })
		assert.Zero(t, panicking.Status(host).InFlight)
	}

	judging := newTransport(t, newScripted(), httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}),
		httpbreaker.WithClassifier(func(*http.Response, error) httpbreaker.Outcome { panic("classifier") }))
	assert.Panics(t, func() { _, _ = judging.RoundTrip(mustRequest(t, http.MethodGet, host+"/")) })
	for i := 0; i < 100 && judging.Status(host).InFlight > 0; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	assert.Zero(t, judging.Status(host).InFlight)
}
