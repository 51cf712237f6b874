package httpbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// Hedged requests (Policy.HedgeAfter), through real net/http servers. The
// hedge timer is the test's (UseManualHedgeTimers) wherever a test must
// know that a hedge was, or was not, sent: it fires when the test says,
// so nothing depends on timing.

// hedgeServer holds each arrival until the test releases it with a status
// (or its context ends), and says who arrived and who was canceled.
type hedgeServer struct {
	arrived  chan int
	release  [4]chan int
	canceled [4]chan struct{}
	n        atomic.Int64
}

func newHedgeServer() *hedgeServer {
	h := &hedgeServer{arrived: make(chan int, 4)}
	for i := range h.release {
		h.release[i] = make(chan int, 1)
		h.canceled[i] = make(chan struct{})
	}
	return h
}

func (h *hedgeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(h.n.Add(1) - 1)
	if i >= len(h.release) {
		http.Error(w, "too many attempts", http.StatusTeapot)
		return
	}
	h.arrived <- i
	select {
	case status := <-h.release[i]:
		w.WriteHeader(status)
		fmt.Fprintf(w, "attempt %d", i)
	case <-r.Context().Done():
		close(h.canceled[i])
	}
}

// overProtocolsHedged runs f over HTTP/1.1 and HTTP/2, each with a fresh
// hedgeServer behind the real server.
func overProtocolsHedged(t *testing.T, f func(t *testing.T, srv *httptest.Server, base *http.Transport, h *hedgeServer)) {
	var current atomic.Pointer[hedgeServer]
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) })
	overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		h := newHedgeServer()
		current.Store(h)
		f(t, srv, base, h)
	})
}

// hedgedServer starts a hedgeServer behind a real HTTP/1.1 server and
// hands each hedged call's timer to the test (UseManualHedgeTimers), both
// undone when t ends.
func hedgedServer(t *testing.T) (*hedgeServer, *httptest.Server, <-chan *httpbreaker.ManualHedgeTimer) {
	h := newHedgeServer()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	timers, restore := httpbreaker.UseManualHedgeTimers()
	t.Cleanup(restore)
	return h, srv, timers
}

// answer releases arrival i with status.
func (h *hedgeServer) answer(i, status int) { h.release[i] <- status }

type roundTrip struct {
	resp *http.Response
	err  error
}

// start sends req through rt on a goroutine of its own.
func start(rt http.RoundTripper, req *http.Request) <-chan roundTrip {
	done := make(chan roundTrip, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		done <- roundTrip{resp, err}
	}()
	return done
}

// bodyOf reads and closes a response's body.
func bodyOf(t *testing.T, rt roundTrip) string {
	t.Helper()
	require.NoError(t, rt.err)
	defer rt.resp.Body.Close()
	b, err := io.ReadAll(rt.resp.Body)
	require.NoError(t, err)
	return string(b)
}

// fire fires a timer on a goroutine of its own (a hedge runs its attempt
// on the timer's goroutine) and returns when it is done.
func fire(tm *httpbreaker.ManualHedgeTimer) <-chan bool {
	done := make(chan bool, 1)
	go func() { done <- tm.Fire() }()
	return done
}

// hedged starts req through rt and fires its hedge timer, returning once
// the first attempt and the hedge have both reached h: the call, and what
// the timer's firing reports.
func hedged(rt http.RoundTripper, req *http.Request, h *hedgeServer, timers <-chan *httpbreaker.ManualHedgeTimer) (call <-chan roundTrip, fired <-chan bool) {
	call = start(rt, req)
	tm := <-timers
	<-h.arrived
	fired = fire(tm)
	<-h.arrived
	return call, fired
}

var hedgePolicy = httpbreaker.Policy{HedgeAfter: 10 * time.Millisecond}

func TestAHedgeWinsOverASlowFirstAttempt(t *testing.T) {
	overProtocolsHedged(t, func(t *testing.T, srv *httptest.Server, base *http.Transport, h *hedgeServer) {
		timers, restore := httpbreaker.UseManualHedgeTimers()
		defer restore()
		rt := newTransport(t, base, httpbreaker.WithPolicy(hedgePolicy))
		req := mustRequest(t, http.MethodGet, srv.URL+"/menu")
		call := start(rt, req)
		tm := <-timers
		require.Equal(t, 0, <-h.arrived)
		fired := fire(tm)
		require.Equal(t, 1, <-h.arrived, "the hedge")
		h.answer(1, http.StatusOK)

		got := <-call
		require.NoError(t, got.err)
		assert.Same(t, req, got.resp.Request, "the response names the caller's request")
		assert.Equal(t, "attempt 1", bodyOf(t, got))
		<-h.canceled[0] // the loser was canceled
		assert.True(t, <-fired)
		key := rt.Snapshot()[0].Host
		assert.Equal(t, httpbreaker.Counts{Requests: 1, Successes: 1, Hedges: 1, HedgeWins: 1}, rt.Status(key).Total)
	})
}

// With the real timer: the slow first attempt is hedged after HedgeAfter.
func TestHedgingWithTheRealTimer(t *testing.T) {
	overProtocolsHedged(t, func(t *testing.T, srv *httptest.Server, base *http.Transport, h *hedgeServer) {
		h.answer(1, http.StatusOK) // the hedge answers at once; the first waits
		rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Millisecond}))
		got := <-start(rt, mustRequest(t, http.MethodGet, srv.URL+"/"))
		assert.Equal(t, "attempt 1", bodyOf(t, got))
		<-h.canceled[0]
	})
}

func TestAnAnswerBeforeHedgeAfterSendsNoHedge(t *testing.T) {
	h, srv, timers := hedgedServer(t)
	rt := newTransport(t, nil, httpbreaker.WithPolicy(hedgePolicy))
	h.answer(0, http.StatusOK)
	got := <-start(rt, mustRequest(t, http.MethodGet, srv.URL+"/"))
	assert.Equal(t, "attempt 0", bodyOf(t, got))
	tm := <-timers
	assert.True(t, tm.Stopped(), "the timer is stopped with the answer")
	assert.False(t, tm.Fire(), "and never fires")
	assert.Equal(t, int64(1), h.n.Load())
	assert.Zero(t, rt.Snapshot()[0].Total.Hedges)
}

// Each gate keeps the hedge unsent: the call is answered by its first
// attempt alone.
func TestHedgeGates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy httpbreaker.Policy
		// request makes the call's request; nil: a GET.
		request func(t *testing.T, url string) *http.Request
		// during runs while the first attempt is held, before the timer
		// fires.
		during  func(t *testing.T, rt *httpbreaker.Transport, url, key string, h *hedgeServer)
		noTimer bool // the request is never hedged: no race, no timer
	}{
		{name: "a POST without an idempotency key", noTimer: true,
			request: func(t *testing.T, url string) *http.Request {
				return requestWithBody(t, http.MethodPost, url, "order")
			}},
		{name: "a body without GetBody", noTimer: true,
			request: func(t *testing.T, url string) *http.Request {
				req := requestWithBody(t, http.MethodPut, url, "order")
				req.Header.Set("Idempotency-Key", "k1")
				req.GetBody = nil
				return req
			}},
		{name: "WithoutHedging", noTimer: true,
			request: func(t *testing.T, url string) *http.Request {
				req := mustRequest(t, http.MethodGet, url)
				return req.WithContext(httpbreaker.WithoutHedging(req.Context()))
			}},
		{name: "an upgrade", noTimer: true,
			request: func(t *testing.T, url string) *http.Request {
				req := mustRequest(t, http.MethodGet, url)
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				return req
			}},
		{name: "isolated", during: func(t *testing.T, rt *httpbreaker.Transport, _, key string, _ *hedgeServer) { rt.Isolate(key) }},
		{name: "opened by other calls", policy: httpbreaker.Policy{FailureThreshold: 1},
			during: func(t *testing.T, rt *httpbreaker.Transport, url, key string, h *hedgeServer) {
				req := mustRequest(t, http.MethodGet, url)
				resp, err := rt.RoundTrip(req.WithContext(httpbreaker.WithoutHedging(req.Context()))) // arrival 1: a 500
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, 1, <-h.arrived)
				require.True(t, rt.IsOpen(key))
			}},
		{name: "a full concurrency cap", policy: httpbreaker.Policy{MaxConcurrent: 1}},
		{name: "a spent retry budget", policy: httpbreaker.Policy{RetryBudget: 0.1, MinRetries: 1},
			during: func(t *testing.T, rt *httpbreaker.Transport, url, _ string, _ *hedgeServer) {
				require.True(t, rt.AllowRetry(mustRequest(t, http.MethodGet, url)), "the floor's one retry")
				require.False(t, rt.CanRetry(mustRequest(t, http.MethodGet, url)), "spent")
			}},
		{name: "shedding", policy: httpbreaker.Policy{MaxConcurrent: 2},
			during: func(t *testing.T, rt *httpbreaker.Transport, url, key string, h *hedgeServer) {
				second := start(rt, withoutHedging(mustRequest(t, http.MethodGet, url)))
				require.Equal(t, 1, <-h.arrived, "held: both slots taken")
				_, err := rt.RoundTrip(mustRequest(t, http.MethodGet, url))
				require.ErrorIs(t, err, httpbreaker.ErrOverloaded, "the third is shed")
				require.True(t, rt.Status(key).Shedding)
				h.answer(1, http.StatusOK) // a slot is free again
				_ = bodyOf(t, <-second)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, srv, timers := hedgedServer(t)
			policy := tc.policy
			policy.HedgeAfter = hedgePolicy.HedgeAfter
			rt := newTransport(t, nil, httpbreaker.WithPolicy(policy))
			req := mustRequest(t, http.MethodGet, srv.URL+"/")
			if tc.request != nil {
				req = tc.request(t, srv.URL+"/")
			}
			key := strings.TrimPrefix(srv.URL, "http://")
			call := start(rt, req)
			require.Equal(t, 0, <-h.arrived)
			if tc.noTimer {
				h.answer(0, http.StatusOK)
				assert.Equal(t, "attempt 0", bodyOf(t, <-call))
				assert.Empty(t, timers, "never hedged")
				return
			}
			tm := <-timers
			if tc.name == "opened by other calls" {
				h.answer(1, http.StatusInternalServerError)
			}
			if tc.during != nil {
				tc.during(t, rt, srv.URL+"/", key, h)
			}
			arrivals := h.n.Load()
			fired := fire(tm)
			select {
			case ok := <-fired:
				assert.True(t, ok, "the timer fired")
			case i := <-h.arrived:
				t.Errorf("a hedge was sent (arrival %d)", i)
				h.answer(i, http.StatusOK)
				<-fired
			}
			assert.Equal(t, arrivals, h.n.Load(), "no hedge sent")
			h.answer(0, http.StatusOK)
			got := <-call
			require.NoError(t, got.err)
			assert.Equal(t, "attempt 0", bodyOf(t, got))
			st := rt.Status(key)
			assert.Zero(t, st.Total.Hedges)
			if policy.RetryBudget > 0 {
				assert.Equal(t, uint64(1), st.Total.Retries, "a hedge's denial is not a retry's")
				assert.Equal(t, uint64(1), st.Total.RetriesDenied, "CanRetry's no")
			}
		})
	}
}

func withoutHedging(req *http.Request) *http.Request {
	return req.WithContext(httpbreaker.WithoutHedging(req.Context()))
}

func requestWithBody(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	return req
}

// A probe is never hedged: half-open, the circuit keeps to its probes.
func TestAProbeIsNeverHedged(t *testing.T) {
	h, srv, timers := hedgedServer(t)
	clock := newClock()
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Second, FailureThreshold: 1, ResetTimeout: time.Minute}))
	h.answer(0, http.StatusInternalServerError)
	_ = bodyOf(t, <-start(rt, mustRequest(t, http.MethodGet, srv.URL+"/")))
	<-timers // the first call's, stopped with its answer
	clock.Advance(time.Minute)
	h.answer(1, http.StatusOK)
	assert.Equal(t, "attempt 1", bodyOf(t, <-start(rt, mustRequest(t, http.MethodGet, srv.URL+"/"))), "the probe")
	assert.Empty(t, timers, "the probe had no hedge timer")
	assert.True(t, rt.IsClosed(srv.URL))
}

func TestMaxHedges(t *testing.T) {
	h, srv, timers := hedgedServer(t)
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Second, MaxHedges: 2}))
	call := start(rt, mustRequest(t, http.MethodGet, srv.URL+"/"))
	tm := <-timers
	<-h.arrived
	first := fire(tm)
	require.Equal(t, 1, <-h.arrived)
	second := fire(tm) // re-armed by the first hedge
	require.Equal(t, 2, <-h.arrived)
	h.answer(2, http.StatusOK)
	assert.Equal(t, "attempt 2", bodyOf(t, <-call))
	<-h.canceled[0]
	<-h.canceled[1]
	assert.True(t, <-first)
	assert.True(t, <-second)
	assert.False(t, tm.Fire(), "no third hedge")
	assert.Equal(t, int64(3), h.n.Load())
	st := rt.Snapshot()[0].Total
	assert.Equal(t, uint64(2), st.Hedges)
	assert.Equal(t, uint64(1), st.HedgeWins)
}

// The caller's cancellation cancels every attempt; the call is ignored.
func TestTheCallersCancellationCancelsEveryAttempt(t *testing.T) {
	overProtocolsHedged(t, func(t *testing.T, srv *httptest.Server, base *http.Transport, h *hedgeServer) {
		timers, restore := httpbreaker.UseManualHedgeTimers()
		defer restore()
		rt := newTransport(t, base, httpbreaker.WithPolicy(hedgePolicy))
		ctx, cancel := context.WithCancelCause(context.Background())
		req := mustRequest(t, http.MethodGet, srv.URL+"/")
		call, fired := hedged(rt, req.WithContext(ctx), h, timers)
		cancel(errors.New("the caller gave up"))
		got := <-call
		require.Error(t, got.err, "the cancellation's cause, or context.Canceled")
		<-h.canceled[0]
		<-h.canceled[1]
		<-fired
		st := rt.Snapshot()[0].Total
		assert.Equal(t, httpbreaker.Counts{Requests: 1, Ignored: 1, Hedges: 1}, st)
	})
}

// recordingBase wraps a transport and remembers every response body it
// hands out, to tell which were closed.
type recordingBase struct {
	base     http.RoundTripper
	returned chan struct{} // one per answer that came back
	mu       sync.Mutex
	bodies   []*trackedBody
}

type trackedBody struct {
	io.ReadCloser
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return b.ReadCloser.Close() }

func (r *recordingBase) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		tb := &trackedBody{ReadCloser: resp.Body}
		resp.Body = tb
		r.mu.Lock()
		r.bodies = append(r.bodies, tb)
		r.mu.Unlock()
	}
	r.returned <- struct{}{}
	return resp, err
}

func (r *recordingBase) closedCount() (closed, all int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bodies {
		if b.closed.Load() {
			closed++
		}
	}
	return closed, len(r.bodies)
}

// A failed first answer waits for the hedge in flight, which wins; when
// every attempt fails the caller gets the first failure, and the other
// answer is closed.
func TestFailedAnswersWaitForTheHedgeInFlight(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hedgeStatus int
		want        string
		outcome     httpbreaker.Counts
	}{
		{"the hedge succeeds", http.StatusOK, "attempt 1", httpbreaker.Counts{Requests: 1, Successes: 1, Hedges: 1, HedgeWins: 1}},
		{"every attempt fails", http.StatusBadGateway, "attempt 0", httpbreaker.Counts{Requests: 1, Failures: 1, Hedges: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			overProtocolsHedged(t, func(t *testing.T, srv *httptest.Server, real *http.Transport, h *hedgeServer) {
				timers, restore := httpbreaker.UseManualHedgeTimers()
				defer restore()
				base := &recordingBase{base: real, returned: make(chan struct{}, 4)}
				rt := newTransport(t, base, httpbreaker.WithPolicy(hedgePolicy))
				call, fired := hedged(rt, mustRequest(t, http.MethodGet, srv.URL+"/"), h, timers)
				h.answer(0, http.StatusServiceUnavailable)
				<-base.returned // the first answer is in before the hedge's
				h.answer(1, tc.hedgeStatus)
				got := <-call
				require.NoError(t, got.err)
				assert.Equal(t, tc.want, bodyOf(t, got))
				<-fired
				closed, all := base.closedCount()
				assert.Equal(t, 2, all)
				assert.Equal(t, 2, closed, "the loser's body by the Transport, the winner's by the test")
				assert.Equal(t, tc.outcome, rt.Snapshot()[0].Total)
			})
		})
	}
}

// A failed first answer with no hedge in flight is the call's at once, and
// ends the hedging.
func TestAFailedFirstAnswerEndsTheHedging(t *testing.T) {
	h, srv, timers := hedgedServer(t)
	rt := newTransport(t, nil, httpbreaker.WithPolicy(hedgePolicy))
	h.answer(0, http.StatusServiceUnavailable)
	got := <-start(rt, mustRequest(t, http.MethodGet, srv.URL+"/"))
	require.NoError(t, got.err)
	assert.Equal(t, http.StatusServiceUnavailable, got.resp.StatusCode)
	got.resp.Body.Close()
	tm := <-timers
	assert.False(t, tm.Fire())
	assert.Equal(t, int64(1), h.n.Load())
}

// Hedges withdraw from the retry budget, so retries and hedges together
// stay within it; Counts.Retries counts only the retries.
func TestHedgesShareTheRetryBudget(t *testing.T) {
	h, srv, timers := hedgedServer(t)
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Second, RetryBudget: 0.1, MinRetries: 1}))
	call, fired := hedged(rt, mustRequest(t, http.MethodGet, srv.URL+"/"), h, timers)
	h.answer(1, http.StatusOK)
	assert.Equal(t, "attempt 1", bodyOf(t, <-call))
	<-fired
	assert.False(t, rt.AllowRetry(mustRequest(t, http.MethodGet, srv.URL+"/")), "the hedge took the floor's one withdrawal")
	st := rt.Snapshot()[0].Total
	assert.Equal(t, uint64(1), st.Hedges)
	assert.Zero(t, st.Retries)
	assert.Equal(t, uint64(1), st.RetriesDenied)
}

// A hedge that meets a request body replays it from GetBody.
func TestAHedgeReplaysTheBody(t *testing.T) {
	var bodies sync.Map
	h := newHedgeServer()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies.Store(h.n.Load(), string(b))
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	timers, restore := httpbreaker.UseManualHedgeTimers()
	defer restore()
	rt := newTransport(t, nil, httpbreaker.WithPolicy(hedgePolicy))
	req := requestWithBody(t, http.MethodPost, srv.URL+"/orders", "one pizza")
	req.Header.Set("Idempotency-Key", "order-1")
	call, fired := hedged(rt, req, h, timers)
	h.answer(1, http.StatusOK)
	assert.Equal(t, "attempt 1", bodyOf(t, <-call))
	<-fired
	first, _ := bodies.Load(int64(0))
	second, _ := bodies.Load(int64(1))
	assert.Equal(t, "one pizza", first)
	assert.Equal(t, "one pizza", second)
}

// A base that panics in a hedge, on the timer's goroutine, does not end
// the program: the hedge fails, and the first attempt answers.
func TestAPanicInAHedgeIsItsError(t *testing.T) {
	h, srv, timers := hedgedServer(t)
	var calls atomic.Int64
	real := &http.Transport{}
	defer real.CloseIdleConnections()
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if calls.Add(1) == 2 {
			panic("a bug in the base")
		}
		return real.RoundTrip(req)
	})
	rt := newTransport(t, base, httpbreaker.WithPolicy(hedgePolicy))
	call := start(rt, mustRequest(t, http.MethodGet, srv.URL+"/"))
	tm := <-timers
	<-h.arrived
	assert.True(t, <-fire(tm))
	h.answer(0, http.StatusOK)
	assert.Equal(t, "attempt 0", bodyOf(t, <-call))
}

func TestHedgePolicyValidation(t *testing.T) {
	for _, p := range []httpbreaker.Policy{
		{MaxHedges: 1},
		{HedgeAfter: time.Second, MaxHedges: -1},
		{HedgeAfter: time.Second, MaxHedges: 11},
		{HedgeAfter: 5},
		{HedgeAfter: -time.Second},
	} {
		_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(p))
		assert.Error(t, err, "%+v", p)
	}
	_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Second, MaxHedges: 10}))
	assert.NoError(t, err)
}

// Pooled races serve call after call: answered at once (the race goes back
// to the pool) or hedged (its timer fired: never pooled again), each call
// gets its own answer.
func TestRacesAreReusedCallAfterCall(t *testing.T) {
	var arrivals sync.Map // call id → arrivals so far
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		n, _ := arrivals.LoadOrStore(id, new(atomic.Int64))
		if n.(*atomic.Int64).Add(1) == 1 && r.URL.Query().Get("slow") == "1" {
			<-r.Context().Done() // the first attempt of a slow call waits for its hedge to win
			return
		}
		fmt.Fprint(w, id)
	}))
	defer srv.Close()
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Millisecond}))
	slow := 0
	for i := range 200 {
		s := "0"
		if i%4 == 0 {
			s, slow = "1", slow+1
		}
		req := mustRequest(t, http.MethodGet, fmt.Sprintf("%s/?id=%d&slow=%s", srv.URL, i, s))
		got := <-start(rt, req)
		assert.Equal(t, fmt.Sprint(i), bodyOf(t, got), "call %d", i)
	}
	st := rt.Snapshot()[0].Total
	assert.Equal(t, uint64(200), st.Successes)
	assert.GreaterOrEqual(t, st.HedgeWins, uint64(slow), "every slow call won by its hedge")
}
