package httpbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// throttlePolicy throttles with K = 1 (p = failures / (requests + 1)) from
// the first call, a rate rule that trips only when every call in the window
// failed, and a consecutive rule out of the way, so each test sets p by the
// calls it makes (with a success among them).
var throttlePolicy = httpbreaker.Policy{
	Window: 10 * time.Second, Throttle: 1, FailureRatio: 1, MinimumRequests: 1, FailureThreshold: 1000,
}

// scripted is a base transport whose answers a test sets: status 0 is a
// transport error.
type scripted struct {
	status atomic.Int64
	calls  atomic.Int64
}

func newScripted() *scripted {
	s := &scripted{}
	s.status.Store(http.StatusOK)
	return s
}

func (s *scripted) RoundTrip(req *http.Request) (*http.Response, error) {
	s.calls.Add(1)
	if code := int(s.status.Load()); code != 0 {
		return response(req, code, "body"), nil
	}
	return nil, errors.New("connection refused")
}

// primeThrottle sends successes and then failures through rt, letting all
// of them through whatever the throttle says.
func primeThrottle(t *testing.T, rt *httpbreaker.Transport, base *scripted, successes, failures int) {
	t.Helper()
	httpbreaker.SetRandom(rt, func() float64 { return 1 }) // p ≤ MaxThrottle < 1: never refused
	base.status.Store(http.StatusOK)
	for range successes {
		_, err := get(t, rt, host+"/")
		require.NoError(t, err)
	}
	base.status.Store(http.StatusServiceUnavailable)
	for range failures {
		_, err := get(t, rt, host+"/")
		require.NoError(t, err)
	}
}

func TestThrottleRefusesWithTheBooksProbability(t *testing.T) {
	clock := newClock()
	base := newScripted()
	policy := throttlePolicy
	policy.Throttle = 1.5
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	primeThrottle(t, rt, base, 20, 20)
	// requests 40, accepts 20: p = (40 − 1.5·20) / 41.
	p := (40 - 1.5*20) / 41.0
	assert.InDelta(t, p, rt.Status(host).Throttle, 1e-9)

	sent := base.calls.Load()
	httpbreaker.SetRandom(rt, func() float64 { return p + 1e-6 })
	_, err := get(t, rt, host+"/")
	require.NoError(t, err, "a draw above p passes")
	assert.Equal(t, sent+1, base.calls.Load())

	// That call failed: requests 41. A draw just under the new p refuses.
	p = (41 - 1.5*20) / 42.0
	httpbreaker.SetRandom(rt, func() float64 { return p - 1e-6 })
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	assert.NotErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	var overload *httpbreaker.OverloadError
	require.ErrorAs(t, err, &overload)
	assert.Equal(t, "api.test", overload.Host)
	assert.True(t, overload.Throttled)
	assert.Equal(t, sent+1, base.calls.Load(), "a throttled call is not sent")

	st := rt.Status(host)
	assert.Equal(t, httpbreaker.StateClosed, st.State)
	assert.Equal(t, uint64(1), st.Total.Rejected)
	assert.Equal(t, uint64(1), st.Total.Shed)
	assert.True(t, st.Shedding)
	assert.Equal(t, 21, st.ConsecutiveFailures, "a refusal is not a failure")
	// The refusal counts as a request: requests 42, accepts 20.
	assert.InDelta(t, (42-1.5*20)/43.0, st.Throttle, 1e-9)
}

func TestThrottleFadesAsAcceptsReturnAndWithTime(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy))
	primeThrottle(t, rt, base, 1, 30)
	assert.InDelta(t, 0.9, rt.Status(host).Throttle, 1e-9, "capped at MaxThrottle's default")

	// Accepts bring it down, call by call, with no timeout to wait out.
	primeThrottle(t, rt, base, 30, 0)
	assert.InDelta(t, 30/62.0, rt.Status(host).Throttle, 1e-9)

	// The window forgets: a Window later the throttle is off, and even a
	// draw of 0 passes.
	clock.At(10*time.Second + time.Second)
	assert.Zero(t, rt.Status(host).Throttle)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	base.status.Store(http.StatusOK)
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
}

func TestMaxThrottleCapsTheProbability(t *testing.T) {
	clock := newClock()
	base := newScripted()
	policy := throttlePolicy
	policy.MaxThrottle = 0.5
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	primeThrottle(t, rt, base, 1, 50)
	assert.InDelta(t, 0.5, rt.Status(host).Throttle, 1e-9)
	httpbreaker.SetRandom(rt, func() float64 { return 0.5 })
	_, err := get(t, rt, host+"/")
	require.NoError(t, err, "a draw at the cap passes")
	httpbreaker.SetRandom(rt, func() float64 { return 0.4999 })
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
}

// Criticality shares the throttle's refusals out, lowest first. After the
// priming, p = 10/40 and the throttle has counted 9 Critical attempts (the
// calls after the first failure, while p > 0); the call under test adds its
// own.
func TestCriticalitySharesRefusalsOutLowestFirst(t *testing.T) {
	const p = 10 / 40.0 // 29 successes, 10 failures, K = 1
	tests := []struct {
		name    string
		ctx     func(context.Context) context.Context
		draw    float64
		refused bool
	}{
		// Critical alone: q = p·N/n_C = p.
		{"no criticality", func(ctx context.Context) context.Context { return ctx }, p - 0.001, true},
		{"no criticality", func(ctx context.Context) context.Context { return ctx }, p + 0.001, false},
		{"critical", with(httpbreaker.Critical), p - 0.001, true},
		{"critical", with(httpbreaker.Critical), p + 0.001, false},
		{"unknown value", with(httpbreaker.Criticality(7)), p - 0.001, true},
		{"unknown value", with(httpbreaker.Criticality(7)), p + 0.001, false},
		// One sheddable call among 10: the 2.5 refusals due cover it.
		{"sheddable", with(httpbreaker.Sheddable), 0.999, true},
		// One critical-plus call among 10: the 9 critical ones take them.
		{"critical-plus", with(httpbreaker.CriticalPlus), 0, false},
	}
	for _, tt := range tests {
		clock := newClock()
		base := newScripted()
		rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy))
		primeThrottle(t, rt, base, 29, 10)
		require.InDelta(t, p, rt.Status(host).Throttle, 1e-9)
		httpbreaker.SetRandom(rt, func() float64 { return tt.draw })
		req := mustRequest(t, http.MethodGet, host+"/")
		_, err := oneResult(t, rt, req.WithContext(tt.ctx(req.Context())))
		if tt.refused {
			assert.ErrorIs(t, err, httpbreaker.ErrOverloaded, "%s, draw %v", tt.name, tt.draw)
		} else {
			assert.NoError(t, err, "%s, draw %v", tt.name, tt.draw)
		}
	}
}

// A level alone gets the throttle's share, whatever its criticality: the
// host sees the same share refused.
func TestLoneCriticalityGetsTheWholeShare(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy))
	httpbreaker.SetRandom(rt, func() float64 { return 1 })
	plus := func() *http.Request {
		req := mustRequest(t, http.MethodGet, host+"/")
		return req.WithContext(httpbreaker.WithCriticality(req.Context(), httpbreaker.CriticalPlus))
	}
	_, err := oneResult(t, rt, plus())
	require.NoError(t, err)
	base.status.Store(http.StatusServiceUnavailable)
	for range 20 {
		_, err := oneResult(t, rt, plus())
		require.NoError(t, err)
	}
	require.InDelta(t, 0.9, rt.Status(host).Throttle, 1e-9)
	httpbreaker.SetRandom(rt, func() float64 { return 0.899 })
	_, err = oneResult(t, rt, plus())
	assert.ErrorIs(t, err, httpbreaker.ErrOverloaded, "critical-plus alone is refused with p")
	httpbreaker.SetRandom(rt, func() float64 { return 0.901 })
	_, err = oneResult(t, rt, plus())
	assert.NoError(t, err)
}

func with(c httpbreaker.Criticality) func(context.Context) context.Context {
	return func(ctx context.Context) context.Context { return httpbreaker.WithCriticality(ctx, c) }
}

func TestCriticalityFrom(t *testing.T) {
	ctx := context.Background()
	assert.Equal(t, httpbreaker.Critical, httpbreaker.CriticalityFrom(ctx))
	for _, c := range []httpbreaker.Criticality{httpbreaker.Sheddable, httpbreaker.Critical, httpbreaker.CriticalPlus} {
		assert.Equal(t, c, httpbreaker.CriticalityFrom(httpbreaker.WithCriticality(ctx, c)))
	}
	assert.Equal(t, httpbreaker.Critical, httpbreaker.CriticalityFrom(httpbreaker.WithCriticality(ctx, -5)))
	keyed := httpbreaker.WithCriticality(httpbreaker.WithKey(ctx, "tenant-a"), httpbreaker.Sheddable)
	assert.Equal(t, httpbreaker.Sheddable, httpbreaker.CriticalityFrom(keyed), "controls combine")
	assert.Equal(t, "sheddable critical critical-plus",
		httpbreaker.Sheddable.String()+" "+httpbreaker.Critical.String()+" "+httpbreaker.CriticalPlus.String())
}

// The breaker's rules still open the circuit under throttling, throttled
// refusals are not failures, and the throttle keeps its window across the
// open period (a good probe does not end an overload); ClearState empties it.
func TestThrottleLeavesTheBreakerRulesInPlace(t *testing.T) {
	clock := newClock()
	base := newScripted()
	policy := throttlePolicy
	policy.FailureThreshold = 5
	policy.ResetTimeout = 2 * time.Second
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy))
	primeThrottle(t, rt, base, 10, 4)
	require.True(t, rt.IsClosed(host))
	httpbreaker.SetRandom(rt, func() float64 { return 0 }) // every draw refuses while p > 0
	for range 3 {
		_, err := get(t, rt, host+"/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	}
	assert.Equal(t, 4, rt.Status(host).ConsecutiveFailures)
	httpbreaker.SetRandom(rt, func() float64 { return 1 })
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	require.True(t, rt.IsOpen(host), "the fifth failure in a row opens the circuit")
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "an open circuit refuses as before")
	assert.Zero(t, rt.Status(host).Throttle, "no throttle while open")

	clock.At(3 * time.Second)
	base.status.Store(http.StatusOK)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	_, err = get(t, rt, host+"/")
	require.NoError(t, err, "the probe is never throttled")
	require.True(t, rt.IsClosed(host))
	// 10 accepts; 5 failures and 3 refusals; the probe is not counted.
	assert.InDelta(t, (18-10)/19.0, rt.Status(host).Throttle, 1e-9, "the throttle resumes where it was")
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)

	rt.ClearState(host)
	assert.Zero(t, rt.Status(host).Throttle, "ClearState empties the throttle")
	_, err = get(t, rt, host+"/")
	require.NoError(t, err)
}

// A refusal for overload is a refusal: the stale cache and the fallback
// answer it.
func TestOverloadRefusalsGoThroughStaleAndFallback(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy),
		httpbreaker.WithStaleIfError(1<<20))
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
	require.NoError(t, err)
	_, _ = io.ReadAll(resp.Body) // kept once read to the end
	_ = resp.Body.Close()
	primeThrottle(t, rt, base, 0, 20)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	resp, err = rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the kept response")
	assert.NotEmpty(t, resp.Header.Get("Warning"))
	_ = resp.Body.Close()

	var seen error
	fb := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy),
		httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
			seen = err
			return response(req, http.StatusOK, "fallback"), nil
		}))
	primeThrottle(t, fb, base, 1, 20)
	httpbreaker.SetRandom(fb, func() float64 { return 0 })
	code, err := get(t, fb, host+"/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.ErrorIs(t, seen, httpbreaker.ErrOverloaded)
	assert.Equal(t, uint64(1), fb.Status(host).Total.Rejected, "answered by a fallback, still a refusal")
}

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

func TestSheddingReachesListenersAndLogs(t *testing.T) {
	clock := newClock()
	base := newScripted()
	var mu sync.Mutex
	var events []httpbreaker.Transition
	var changes []string
	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy),
		httpbreaker.WithOnTransition(func(ev httpbreaker.Transition) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}),
		httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(logger)),
		httpbreaker.WithOnStateChange(func(host string, from, to httpbreaker.State) {
			changes = append(changes, from.String()+"->"+to.String())
		}))
	primeThrottle(t, rt, base, 1, 20)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	clock.At(time.Second)
	for range 3 {
		_, err := get(t, rt, host+"/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	}
	require.Len(t, events, 1, "one start, however many refusals")
	assert.Equal(t, httpbreaker.Transition{Host: "api.test", From: httpbreaker.StateClosed, To: httpbreaker.StateClosed,
		At: t0.Add(time.Second), Shedding: true}, events[0])
	assert.True(t, rt.Status(host).Shedding)

	// A call within the quiet period changes nothing; one a Window after
	// the last refusal ends it.
	httpbreaker.SetRandom(rt, func() float64 { return 1 })
	base.status.Store(http.StatusOK)
	clock.At(5 * time.Second)
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	require.Len(t, events, 1)
	clock.At(11 * time.Second)
	assert.False(t, rt.Status(host).Shedding, "the status reads the clock")
	_, err = get(t, rt, host+"/")
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.Equal(t, httpbreaker.Transition{Host: "api.test", From: httpbreaker.StateClosed, To: httpbreaker.StateClosed,
		At: t0.Add(11 * time.Second), Shedding: false}, events[1])

	// A state change ends shedding, the stop first.
	primeThrottle(t, rt, base, 1, 20)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	rt.Isolate(host)
	require.Len(t, events, 5)
	assert.True(t, events[2].Shedding)
	assert.Equal(t, httpbreaker.Transition{Host: "api.test", From: httpbreaker.StateClosed, To: httpbreaker.StateClosed,
		At: t0.Add(11 * time.Second)}, events[3])
	assert.Equal(t, httpbreaker.StateOpen, events[4].To)

	assert.Equal(t, []string{"closed->open"}, changes, "WithOnStateChange hears state changes only")
	assert.Equal(t, []httpbreaker.TransitionCount{{From: httpbreaker.StateClosed, To: httpbreaker.StateOpen, Count: 1}},
		rt.Transitions(), "shedding is not counted as a transition")
	out := logged.String()
	assert.Contains(t, out, `level=WARN msg="httpbreaker: host shedding load" host=api.test shedding=true`)
	assert.Contains(t, out, `level=INFO msg="httpbreaker: host stopped shedding load" host=api.test shedding=false`)
}

// Throttle on and a healthy host: no allocation, and no refusal whatever
// the draws say.
func TestHealthyHostIsNeverThrottled(t *testing.T) {
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Second, Throttle: 1}))
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	for range 1000 {
		_, err := get(t, rt, host+"/")
		require.NoError(t, err)
	}
	assert.Zero(t, rt.Status(host).Total.Shed)
}

// Overload traffic from many goroutines, with every control call racing
// it: every call is counted once, and once every body is closed no slot is
// held.
func TestOverloadUnderConcurrency(t *testing.T) {
	for _, policy := range []httpbreaker.Policy{
		{Window: time.Second, Throttle: 1.2, FailureThreshold: 50, ResetTimeout: time.Second, HalfOpenMaxRequests: 2, MaxConcurrent: 3},
		{Window: time.Second, Throttle: 1.2, FailureThreshold: 50, ResetTimeout: time.Second, HalfOpenMaxRequests: 2,
			AdaptiveConcurrency: true, MaxConcurrent: 8, MinConcurrent: 2},
	} {
		t.Run(fmt.Sprintf("adaptive=%v", policy.AdaptiveConcurrency), func(t *testing.T) { overloadUnderConcurrency(t, policy) })
	}
}

func overloadUnderConcurrency(t *testing.T, policy httpbreaker.Policy) {
	var n atomic.Int64
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch n.Add(1) % 4 {
		case 0:
			return nil, errors.New("reset")
		case 1:
			return response(req, http.StatusServiceUnavailable, "busy"), nil
		}
		return response(req, http.StatusOK, "ok"), nil
	})
	clock := newClock()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy),
		httpbreaker.WithOnTransition(func(httpbreaker.Transition) {}))
	hosts := []string{"http://a.test/", "http://b.test/", "http://c.test/"}
	const goroutines, perG = 8, 400
	var calls [3]atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // the controls, racing
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			h := hosts[i%len(hosts)]
			switch i % 5 {
			case 0:
				rt.Isolate(h)
			case 1:
				rt.ClearState(h)
			case 2:
				_ = rt.Snapshot()
			case 3:
				clock.At(time.Duration(i) * 100 * time.Millisecond)
			case 4:
				_ = rt.Status(h)
			}
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				h := (g + i) % len(hosts)
				ctx := httpbreaker.WithCriticality(context.Background(), httpbreaker.Criticality(i%3-1))
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hosts[h], nil)
				calls[h].Add(1)
				resp, err := rt.RoundTrip(req)
				if (resp == nil) == (err == nil) {
					t.Errorf("response %v and error %v", resp, err)
				}
				if resp != nil {
					if i%2 == 0 {
						_, _ = io.Copy(io.Discard, resp.Body)
					}
					_ = resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	for i, h := range hosts {
		st := rt.Status(h)
		assert.Zero(t, st.InFlight, h)
		assert.Equal(t, uint64(calls[i].Load()), st.Total.Requests+st.Total.Rejected, "%s: every call counted once", h)
		assert.LessOrEqual(t, st.Total.Shed, st.Total.Rejected, h)
		assert.True(t, st.Limit >= max(policy.MinConcurrent, 1) && st.Limit <= policy.MaxConcurrent, "%s: limit %d", h, st.Limit)
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

// A quiet host is not throttled for one failure: the throttle waits, like
// the rate rule, for MinimumRequests calls in its window. (The book's
// formula alone gives p = 1/2 after a single failure in an empty window,
// and its refusals then count as requests.)
func TestQuietHostIsNotThrottledBelowMinimumRequests(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{Window: time.Minute, Throttle: 1.1}))
	httpbreaker.SetRandom(rt, func() float64 { return 0 }) // any p > 0 refuses
	base.status.Store(http.StatusServiceUnavailable)
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	base.status.Store(http.StatusOK)
	for i := range 5 {
		clock.At(time.Duration(i+1) * 5 * time.Second)
		_, err := get(t, rt, host+"/")
		require.NoError(t, err, "call %d: one failure among a handful of calls refuses nothing", i)
	}
	assert.Zero(t, rt.Status(host).Throttle)
}
