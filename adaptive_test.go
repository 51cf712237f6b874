package httpbreaker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// The adaptive limit through RoundTrip: what it refuses and how, what it
// learns from and what it ignores. Its rules, fed answers directly, are in
// adaptive_internal_test.go; its effect on a host with a capacity knee is
// TestConcurrencySimulation.

var adaptive = httpbreaker.Policy{AdaptiveConcurrency: true, FailureThreshold: 1}

// timeEveryCall makes rt's adaptive limit time every call, not a share
// drawn at random, so that ten calls make a window.
func timeEveryCall(rt *httpbreaker.Transport) *httpbreaker.Transport {
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	return rt
}

// answerIn returns a base that answers 200 after moving clock on by d.
func answerIn(clock *fakeClock, d time.Duration) roundTripFunc {
	return func(req *http.Request) (*http.Response, error) {
		clock.Advance(d)
		return response(req, http.StatusOK, "ok"), nil
	}
}

// learnLimitOfTwo sends ten calls one after another: the first window of
// answers, one call in flight each, moves the limit from its ceiling to
// twice that.
func learnLimitOfTwo(t *testing.T, rt *httpbreaker.Transport, url string) {
	t.Helper()
	for range 10 {
		code, err := get(t, rt, url)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, 2, rt.Status(url).Limit)
}

// limitOfTwoThenGate returns a Transport (with opts) for api.test whose
// adaptive limit learned 2 from ten answers of 10ms, and whose calls from
// then on wait at g until it opens.
func limitOfTwoThenGate(t *testing.T, opts ...httpbreaker.Option) (*httpbreaker.Transport, *gate) {
	t.Helper()
	clock := newClock()
	g := newGate(http.StatusOK)
	learning := true
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if learning {
			return answerIn(clock, 10*time.Millisecond)(req)
		}
		return g.RoundTrip(req)
	})
	opts = append(opts, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(adaptive))
	rt := timeEveryCall(newTransport(t, base, opts...))
	learnLimitOfTwo(t, rt, "http://api.test/")
	learning = false
	return rt, g
}

func TestAdaptiveLimitIsInTheStatus(t *testing.T) {
	for _, c := range []struct {
		policy httpbreaker.Policy
		limit  int
	}{
		{httpbreaker.Policy{}, 0},
		{httpbreaker.Policy{MaxConcurrent: 7}, 7},
		{httpbreaker.Policy{AdaptiveConcurrency: true}, httpbreaker.DefaultMaxConcurrent},
		{httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 50}, 50},
	} {
		rt := newTransport(t, newFakeBase(func(string) int { return http.StatusOK }), httpbreaker.WithPolicy(c.policy))
		assert.Equal(t, c.limit, rt.Status("api.test").Limit, "%+v: a host not called yet has the limit its first call meets", c.policy)
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
		assert.Equal(t, c.limit, rt.Status("api.test").Limit, "%+v", c.policy)
	}
}

func TestAdaptivePolicyIsValidated(t *testing.T) {
	for _, p := range []httpbreaker.Policy{
		{MinConcurrent: 2},
		{AdaptiveConcurrency: true, MinConcurrent: -1},
		{AdaptiveConcurrency: true, MaxConcurrent: 10, MinConcurrent: 11},
		{AdaptiveConcurrency: true, MinConcurrent: httpbreaker.DefaultMaxConcurrent + 1},
	} {
		_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(p))
		require.Error(t, err, "%+v", p)
		assert.Contains(t, err.Error(), "MinConcurrent")
	}
	_, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 10, MinConcurrent: 10}))
	assert.NoError(t, err)
}

// A call over the adaptive limit is refused at once as the static cap
// refuses: an *OverloadError that says it was the adaptive limit, counted as
// shed and never as a failure (FailureThreshold 1 would open the circuit),
// through the fallback.
func TestAdaptiveLimitRefusesOverTheLimit(t *testing.T) {
	var refused error
	rt, g := limitOfTwoThenGate(t, httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
		refused = err
		return nil, err
	}))

	held := make(chan *http.Response, 2)
	for range 2 {
		go func() {
			resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, "http://api.test/"))
			assert.NoError(t, err)
			held <- resp
		}()
		<-g.entered
	}
	_, err := rt.RoundTrip(mustRequest(t, http.MethodGet, "http://api.test/"))
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	var overload *httpbreaker.OverloadError
	require.ErrorAs(t, err, &overload)
	assert.True(t, overload.Adaptive)
	assert.Equal(t, "api.test", overload.Host)
	assert.Contains(t, err.Error(), "adaptive concurrency limit")
	assert.Same(t, overload, refused, "the fallback was given the refusal")

	st := rt.Status("api.test")
	assert.Equal(t, httpbreaker.StateClosed, st.State)
	assert.Equal(t, uint64(1), st.Total.Shed)
	assert.Zero(t, st.Total.Failures)
	assert.Equal(t, 2, st.InFlight)

	close(g.release)
	for range 2 {
		resp := <-held
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
	}
	assert.Zero(t, rt.Status("api.test").InFlight, "slots come back with the bodies")
	_, err = get(t, rt, "http://api.test/")
	assert.NoError(t, err)
}

// At the limit, Sheddable calls are refused first, then Critical, and
// CriticalPlus last: with a limit of 2, a Sheddable call may join one call
// in flight, a Critical call one more, a CriticalPlus call one over it.
func TestAdaptiveLimitRefusesSheddableFirstAndCriticalPlusLast(t *testing.T) {
	rt, g := limitOfTwoThenGate(t)

	call := func(c httpbreaker.Criticality) error {
		req := mustRequest(t, http.MethodGet, "http://api.test/")
		req = req.WithContext(httpbreaker.WithCriticality(req.Context(), c))
		errs := make(chan error, 1)
		go func() {
			resp, err := rt.RoundTrip(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			errs <- err
		}()
		select {
		case <-g.entered: // admitted: it stays in flight until the gate opens
			return nil
		case err := <-errs:
			return err
		}
	}
	require.NoError(t, call(httpbreaker.Sheddable), "nothing in flight")
	assert.ErrorIs(t, call(httpbreaker.Sheddable), httpbreaker.ErrOverloaded, "Sheddable: the limit less a quarter, at least 1")
	require.NoError(t, call(httpbreaker.Critical))
	assert.ErrorIs(t, call(httpbreaker.Critical), httpbreaker.ErrOverloaded, "Critical: the limit")
	require.NoError(t, call(httpbreaker.CriticalPlus), "CriticalPlus: a quarter over, at least 1")
	assert.ErrorIs(t, call(httpbreaker.CriticalPlus), httpbreaker.ErrOverloaded)
	assert.Equal(t, uint64(3), rt.Status("api.test").Total.Shed)
	close(g.release)
}

// The limit is about the host's queueing: calls that failed at the
// transport, and calls their callers canceled, teach it nothing, however
// slow; ten answered calls do.
func TestAdaptiveLimitIgnoresTransportErrorsAndCancellations(t *testing.T) {
	clock := newClock()
	mode := "error"
	var cancel context.CancelCauseFunc
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		clock.Advance(time.Second)
		switch mode {
		case "error":
			return nil, errors.New("connection reset by peer")
		case "canceled": // the caller gives up while the call waits
			cancel(errors.New("errgroup: a sibling failed"))
			return nil, context.Cause(req.Context())
		}
		return response(req, http.StatusOK, "ok"), nil
	})
	rt := timeEveryCall(newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		AdaptiveConcurrency: true, FailureThreshold: 100,
	})))
	for range 10 {
		_, err := get(t, rt, "http://api.test/")
		require.Error(t, err)
	}
	mode = "canceled"
	for range 10 {
		ctx, stop := context.WithCancelCause(context.Background())
		cancel = stop
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.test/", nil)
		_, err := rt.RoundTrip(req)
		require.Error(t, err)
		stop(nil)
	}
	assert.Equal(t, httpbreaker.DefaultMaxConcurrent, rt.Status("api.test").Limit, "twenty calls, nothing learned")
	mode = "answer"
	for range 10 {
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
	}
	assert.Equal(t, 2, rt.Status("api.test").Limit, "ten answers make a window")
}

// Probes are answers like any other: a window made only of probes moves
// the limit.
func TestAdaptiveLimitLearnsFromProbes(t *testing.T) {
	clock := newClock()
	failing := true
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing {
			return nil, errors.New("connection refused")
		}
		return answerIn(clock, 10*time.Millisecond)(req)
	})
	rt := timeEveryCall(newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		AdaptiveConcurrency: true, FailureThreshold: 1, ResetTimeout: time.Second,
		HalfOpenMaxRequests: 10, SuccessThreshold: 10,
	})))
	_, err := get(t, rt, "http://api.test/")
	require.Error(t, err)
	require.True(t, rt.IsOpen("api.test"))
	clock.Advance(time.Second)
	failing = false
	for range 10 {
		require.False(t, rt.IsClosed("api.test"), "every call below is a probe")
		_, err := get(t, rt, "http://api.test/")
		require.NoError(t, err)
	}
	assert.True(t, rt.IsClosed("api.test"))
	assert.Equal(t, 2, rt.Status("api.test").Limit)
}

func TestClearStateRestartsTheAdaptiveLimit(t *testing.T) {
	clock := newClock()
	rt := timeEveryCall(newTransport(t, answerIn(clock, 10*time.Millisecond), httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(adaptive)))
	learnLimitOfTwo(t, rt, "http://api.test/")
	rt.ClearState("api.test")
	assert.Equal(t, httpbreaker.DefaultMaxConcurrent, rt.Status("api.test").Limit)
}

// The adaptive limit as users run it: net/http's transport against an
// httptest server, HTTP/1.1 and HTTP/2, through an http.Client with default
// options. The first window moves the limit whatever the real latencies
// are: it leaves the ceiling at twice the concurrency it saw.
func TestAdaptiveLimitOverRealTransports(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
		client, rt, err := httpbreaker.NewClient(&http.Client{Transport: base}, httpbreaker.WithPolicy(adaptive))
		require.NoError(t, err)
		timeEveryCall(rt)
		key := srv.Listener.Addr().String()
		for range 10 {
			resp, err := client.Get(srv.URL + "/")
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			require.NoError(t, resp.Body.Close())
		}
		require.Equal(t, 2, rt.Status(key).Limit)

		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				resp, err := client.Get(srv.URL + "/hold")
				if assert.NoError(t, err) {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				done <- struct{}{}
			}()
			<-entered
		}
		_, err = client.Get(srv.URL + "/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
		for range 2 {
			release <- struct{}{}
			<-done
		}
		assert.Zero(t, rt.Status(key).InFlight)
		resp, err := client.Head(srv.URL + "/")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Zero(t, rt.Status(key).InFlight, "a HEAD frees its slot at once")
	})
}

// A small limit that calls use fully grows, also when the answers have no
// body (a HEAD, a 204) and give their slots back as they come: over
// HTTP/1.1 and HTTP/2, through net/http's own transport, each batch of
// calls as large as the limit and answered in 10ms by the fake clock.
func TestAdaptiveLimitGrowsOnBodylessAnswers(t *testing.T) {
	for _, method := range []string{http.MethodHead, http.MethodGet} { // GET answers 204
		t.Run(method, func(t *testing.T) {
			clock := newClock()
			entered := make(chan struct{}, 16)
			var release atomic.Pointer[chan struct{}]
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wait := *release.Load()
				entered <- struct{}{}
				<-wait
				if r.Method == http.MethodGet {
					w.WriteHeader(http.StatusNoContent)
				}
			})
			overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
				rt := timeEveryCall(newTransport(t, base, httpbreaker.WithClock(clock.Now),
					httpbreaker.WithClassifier(httpbreaker.SuccessStatus(http.StatusOK, http.StatusNoContent)),
					httpbreaker.WithPolicy(httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 64})))
				key := srv.Listener.Addr().String()
				batch := func(n int) {
					gate := make(chan struct{})
					release.Store(&gate)
					done := make(chan error, n)
					for range n {
						go func() {
							resp, err := rt.RoundTrip(mustRequest(t, method, srv.URL))
							if err == nil {
								err = resp.Body.Close()
							}
							done <- err
						}()
					}
					for range n {
						select {
						case <-entered:
						case err := <-done: // refused or failed before reaching the server
							require.NoError(t, err)
							require.Fail(t, "a call ended before the server answered")
						}
					}
					clock.Advance(10 * time.Millisecond)
					close(gate)
					for range n {
						require.NoError(t, <-done)
					}
				}
				for range 10 { // the first window, one call at a time: the limit leaves its ceiling at 2
					batch(1)
				}
				require.Equal(t, 2, rt.Status(key).Limit)
				for i := 0; i < 300 && rt.Status(key).Limit < 6; i++ {
					batch(rt.Status(key).Limit) // every slot taken, no queue: the limit binds
				}
				assert.GreaterOrEqual(t, rt.Status(key).Limit, 6, "a fully used limit grows")
				assert.Zero(t, rt.Status(key).InFlight)
			})
		})
	}
}

// poolHost is a loopback server with a capacity knee on a fake clock: the
// test's driver answers, at each 10ms step, the workers oldest waiting
// calls; past queueLimit waiting it answers 503 at once. It records how many steps each of the Transport's calls waited
// (other clients' calls carry an X-Other header).
type poolHost struct {
	queueLimit int
	mu         sync.Mutex
	queue      []chan struct{}
	entered    chan struct{} // a call reached the server
	waits      []poolWait
	step       int
}

// poolWait is one answered call: the step it came at, and how many steps
// it waited (1 for none).
type poolWait struct{ at, steps int }

func (h *poolHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	answer := make(chan struct{})
	h.mu.Lock()
	if len(h.queue) >= h.queueLimit {
		h.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.queue = append(h.queue, answer)
	arrived := h.step
	h.mu.Unlock()
	h.entered <- struct{}{}
	<-answer
	if r.Header.Get("X-Other") == "" {
		h.mu.Lock()
		h.waits = append(h.waits, poolWait{arrived, h.step - arrived})
		h.mu.Unlock()
	}
	_, _ = io.WriteString(w, "ok")
}

// answer moves to the next step and answers up to n waiting calls,
// returning how many.
func (h *poolHost) answer(n int) int {
	h.mu.Lock()
	h.step++
	n = min(n, len(h.queue))
	answered := h.queue[:n]
	h.queue = h.queue[n:]
	h.mu.Unlock()
	for _, a := range answered {
		close(a)
	}
	return n
}

// served counts the Transport's answered calls that came at or after step
// from.
func (h *poolHost) served(from int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, w := range h.waits {
		if w.at >= from {
			n++
		}
	}
	return n
}

// medianWait is the median wait of the Transport's calls that came at or
// after step from.
func (h *poolHost) medianWait(from int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var waits []int
	for _, w := range h.waits {
		if w.at >= from {
			waits = append(waits, w.steps)
		}
	}
	if len(waits) == 0 {
		return -1
	}
	slices.Sort(waits)
	return waits[len(waits)/2]
}

// A worker pool as users run one, through http.Client and net/http's
// transport, HTTP/1.1 and HTTP/2: 50 callers in a closed loop, each sending
// its next call when the last is answered (and one step after a refusal),
// against a host of 10 workers serving a call per 10ms step. The limit
// measured the queue as unloaded and stayed at 100, twice the pool,
// refusing nothing while every call waited five steps; now it finds the
// knee: a limit near 10, calls refused, and a served call's median wait
// one step, the service time. And when the process starts, at step 20,
// against a host that 30 other callers (no limit) keep queueing until step
// 100, past 40 waiting answering 503 at once, the limit takes no latency
// from those 503s (it took them for an unloaded latency of nothing, and
// sat at the floor, 1, until step 290), and once the others leave the host
// serves the pool at its capacity.
func TestAdaptiveLimitFindsTheKneeOfAWorkerPool(t *testing.T) {
	const workers, callers, steps = 10, 50, 400
	var current atomic.Pointer[poolHost]
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) })
	for _, c := range []struct {
		name                       string
		others, othersUntil, start int
	}{{"a pool from the start", 0, 0, 0}, {"a host busy at the start", 30, 100, 20}} {
		t.Run(c.name, func(t *testing.T) {
			overProtocols(t, handler, func(t *testing.T, srv *httptest.Server, base *http.Transport) {
				host := &poolHost{queueLimit: 4 * workers, entered: make(chan struct{}, callers+c.others)}
				current.Store(host)
				clock := newClock()
				client, rt, err := httpbreaker.NewClient(&http.Client{Transport: base}, httpbreaker.WithClock(clock.Now),
					httpbreaker.WithPolicy(httpbreaker.Policy{AdaptiveConcurrency: true, FailureThreshold: 1 << 20}))
				require.NoError(t, err)
				key := srv.Listener.Addr().String()
				var stop atomic.Bool
				var tick atomic.Pointer[chan struct{}]
				first := make(chan struct{})
				tick.Store(&first)
				refused := make(chan struct{}, callers) // a caller waits for the next step
				left := make(chan struct{}, c.others)   // another client's caller left
				othersGo := func() bool {
					host.mu.Lock()
					defer host.mu.Unlock()
					return host.step < c.othersUntil
				}
				var wg sync.WaitGroup
				for range c.others {
					wg.Add(1)
					go func() {
						defer wg.Done()
						other := &http.Client{Transport: base}
						for othersGo() && !stop.Load() {
							req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
							req.Header.Set("X-Other", "1")
							next := *tick.Load()
							resp, err := other.Do(req)
							if !assert.NoError(t, err) {
								break
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							_ = resp.Body.Close()
							if resp.StatusCode == http.StatusServiceUnavailable {
								refused <- struct{}{}
								<-next
							}
						}
						left <- struct{}{}
					}()
				}
				begin := make(chan struct{}) // the Transport's callers start at step c.start
				for range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-begin
						for !stop.Load() {
							next := *tick.Load()
							resp, err := client.Get(srv.URL)
							switch {
							case errors.Is(err, httpbreaker.ErrOverloaded):
								refused <- struct{}{}
								<-next
							case assert.NoError(t, err):
								_, _ = io.Copy(io.Discard, resp.Body)
								_ = resp.Body.Close()
								if resp.StatusCode == http.StatusServiceUnavailable {
									refused <- struct{}{}
									<-next
								}
							default:
								return
							}
						}
					}()
				}
				// step ends a step: the refused callers go on, then the host
				// answers (the tick first, so that an answered caller refused
				// next waits for the next step).
				step := func() int {
					next := make(chan struct{})
					close(*tick.Swap(&next))
					return host.answer(workers)
				}
				settling := c.others // callers yet to park in the server, behind a refusal, or leave
				for i := range steps {
					if i == c.start {
						close(begin)
						settling += callers
					}
					waiting := 0
					for ; settling > 0; settling-- {
						select {
						case <-host.entered:
						case <-left:
						case <-refused:
							waiting++
						case <-time.After(time.Minute): // a guard, not a wait: every caller parks at once
							require.FailNow(t, "a caller neither reached the server nor was refused")
						}
					}
					clock.Advance(10 * time.Millisecond)
					settling = step() + waiting
				}
				st := rt.Status(key)
				stop.Store(true)
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				for stopped := false; !stopped; {
					host.answer(callers + c.others)
					next := make(chan struct{})
					close(*tick.Swap(&next))
					select {
					case <-done:
						stopped = true
					case <-host.entered:
					case <-refused:
					case <-left:
					}
				}

				from := max(c.start, c.othersUntil) // the host is the Transport's own
				assert.GreaterOrEqual(t, float64(host.served(from)), 0.9*workers*float64(steps-from),
					"goodput: the host's capacity since it is the Transport's own")
				assert.LessOrEqual(t, st.Limit, 2*workers, "the limit found the knee")
				assert.Positive(t, st.Total.Shed, "over the knee, calls are refused")
				assert.LessOrEqual(t, host.medianWait(steps-100), 1, "a served call's median wait at the end: the service time")
			})
		})
	}
}
