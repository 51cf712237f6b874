package httpbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// Calls that are not HTTP requests: Allow, Do and their circuits.

var errBackend = errors.New("backend down")

func fails(context.Context) error    { return errBackend }
func succeeds(context.Context) error { return nil }

func TestDoOpensTheCircuitAndRefusesWithoutCalling(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: time.Minute}))
	ctx := context.Background()
	for i := range 3 {
		err := rt.Do(ctx, "orders-db", fails)
		require.ErrorIs(t, err, errBackend, "call %d: the call's own error, unchanged", i)
	}
	assert.True(t, rt.IsOpen("orders-db"))

	called := false
	err := rt.Do(ctx, "orders-db", func(context.Context) error { called = true; return nil })
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	var oe *httpbreaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "orders-db", oe.Host)
	assert.Equal(t, t0.Add(time.Minute), oe.RetryAt)
	assert.False(t, called, "a refusal never calls")

	st := rt.Status("orders-db")
	assert.Equal(t, httpbreaker.Counts{Requests: 3, Failures: 3, Rejected: 1}, st.Total)

	clock.Advance(time.Minute)
	require.NoError(t, rt.Do(ctx, "orders-db", succeeds), "the probe")
	assert.True(t, rt.IsClosed("orders-db"), "a good probe closes it")
}

// A key used by WithKey and by Do is one circuit: failures of either
// open it for both.
func TestHTTPAndOtherCallsShareOneCircuitPerKey(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(string) int { return 500 }),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	req := mustRequest(t, http.MethodGet, host+"/")
	req = req.WithContext(httpbreaker.WithKey(req.Context(), "billing"))
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.ErrorIs(t, rt.Do(context.Background(), "billing", fails), errBackend)
	assert.True(t, rt.IsOpen("billing"), "one HTTP failure and one call failure: the threshold")

	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "the request is refused too")
	require.Len(t, rt.Snapshot(), 1, "one circuit")
	assert.Equal(t, uint64(2), rt.Snapshot()[0].Total.Failures)
}

func TestAllowsDoneCountsOnce(t *testing.T) {
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	done, err := rt.Allow(context.Background(), "queue")
	require.NoError(t, err)
	done(httpbreaker.Failure)
	done(httpbreaker.Failure) // does nothing
	done(httpbreaker.Success)
	st := rt.Status("queue")
	assert.Equal(t, httpbreaker.Counts{Requests: 1, Failures: 1}, st.Total)
	assert.Equal(t, 1, st.ConsecutiveFailures)
	assert.True(t, rt.IsClosed("queue"))

	done, err = rt.Allow(context.Background(), "queue")
	require.NoError(t, err)
	done(httpbreaker.Outcome(42)) // any other outcome is a failure
	assert.True(t, rt.IsOpen("queue"))
	done, err = rt.Allow(context.Background(), "queue")
	assert.Nil(t, done, "a refusal has no done")
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
}

func TestDoJudgesCancellationsAndDeadlines(t *testing.T) {
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("errgroup: a sibling failed"))
	err := rt.Do(ctx, "search", func(ctx context.Context) error { return context.Cause(ctx) })
	require.Error(t, err)
	assert.True(t, rt.IsClosed("search"), "the caller's own cancellation, whatever its cause, is ignored")
	assert.Equal(t, uint64(1), rt.Status("search").Total.Ignored)

	ctx, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	err = rt.Do(ctx, "search", func(ctx context.Context) error { return ctx.Err() })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, rt.IsOpen("search"), "an expired deadline is the callee's slowness: a failure")
}

var errNotFound = errors.New("not found")

func TestWithErrorClassifier(t *testing.T) {
	var seen []error
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithErrorClassifier(func(err error) httpbreaker.Outcome {
			seen = append(seen, err)
			if errors.Is(err, errNotFound) {
				return httpbreaker.Success // the callee answered
			}
			return httpbreaker.DefaultErrorClassifier(err)
		}))
	require.ErrorIs(t, rt.Do(context.Background(), "kv", func(context.Context) error { return errNotFound }), errNotFound)
	assert.True(t, rt.IsClosed("kv"))
	assert.Equal(t, uint64(1), rt.Status("kv").Total.Successes)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = rt.Do(ctx, "kv", func(context.Context) error { return errBackend })
	require.Len(t, seen, 2)
	assert.ErrorIs(t, seen[1], context.Canceled, "a canceled caller's error matches context.Canceled")
	assert.ErrorIs(t, seen[1], errBackend, "and unwraps to the call's")
	assert.True(t, rt.IsClosed("kv"))

	_, err := httpbreaker.New(nil, httpbreaker.WithErrorClassifier(nil))
	assert.ErrorContains(t, err, "WithErrorClassifier(nil)")
}

func TestAllowAndDoRefuseBadInput(t *testing.T) {
	rt := newTransport(t, nil)
	_, err := rt.Allow(context.Background(), "")
	assert.ErrorContains(t, err, "needs a key")
	//lint:ignore SA1012 a nil context is the bad input under test
	_, err = rt.Allow(nil, "k")
	assert.ErrorContains(t, err, "needs a context")
	assert.ErrorContains(t, rt.Do(context.Background(), "k", nil), "needs a call")
	var zero httpbreaker.Transport
	_, err = zero.Allow(context.Background(), "k")
	assert.Error(t, err)
	assert.Error(t, zero.Do(context.Background(), "k", succeeds))
	assert.Empty(t, rt.Snapshot(), "nothing tracked")
}

func TestAllowWithoutBreakerAndIsolated(t *testing.T) {
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	rt.Isolate("payments")
	err := rt.Do(context.Background(), "payments", succeeds)
	var oe *httpbreaker.OpenError
	require.ErrorAs(t, err, &oe)
	assert.True(t, oe.Isolated)

	ctx := httpbreaker.WithoutBreaker(context.Background())
	require.NoError(t, rt.Do(ctx, "payments", succeeds), "WithoutBreaker passes")
	require.ErrorIs(t, rt.Do(ctx, "other", fails), errBackend)
	assert.False(t, rt.Tracked("other"), "and is counted nowhere")
}

// The cap holds a slot from Allow to done; a done dropped uncalled gives
// it back once collected.
func TestAllowHoldsItsSlotUntilDone(t *testing.T) {
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	ctx := context.Background()
	done, err := rt.Allow(ctx, "worker")
	require.NoError(t, err)
	assert.Equal(t, 1, rt.Status("worker").InFlight)
	_, err = rt.Allow(ctx, "worker")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	var oe *httpbreaker.OverloadError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "worker", oe.Host)
	done(httpbreaker.Success)
	assert.Zero(t, rt.Status("worker").InFlight)

	func() {
		_, err := rt.Allow(ctx, "worker") // done dropped
		require.NoError(t, err)
	}()
	require.Equal(t, 1, rt.Status("worker").InFlight)
	for i := 0; i < 100 && rt.Status("worker").InFlight > 0; i++ {
		runtime.GC() // finalizers run on their own goroutine: let it
		runtime.Gosched()
	}
	assert.Zero(t, rt.Status("worker").InFlight, "the collector gave the slot back")
	st := rt.Status("worker")
	assert.Equal(t, uint64(1), st.Total.Ignored, "the abandoned call ended as ignored")
	assert.Equal(t, uint64(1), st.Total.Shed)
}

func TestDoThatPanicsGivesItsSlotsBack(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1, FailureThreshold: 1, ResetTimeout: time.Second}))
	ctx := context.Background()
	require.PanicsWithValue(t, "boom", func() {
		_ = rt.Do(ctx, "k", func(context.Context) error { panic("boom") })
	})
	assert.Zero(t, rt.Status("k").InFlight)
	require.ErrorIs(t, rt.Do(ctx, "k", fails), errBackend)
	clock.Advance(time.Second)
	require.Panics(t, func() { _ = rt.Do(ctx, "k", func(context.Context) error { panic("probe boom") }) })
	assert.True(t, rt.IsHalfOpen("k"))
	require.NoError(t, rt.Do(ctx, "k", succeeds), "the panicking probe gave its probe slot back")
	assert.True(t, rt.IsClosed("k"))
}

func TestDoSlowCallsFromAllowToDone(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, SlowCall: time.Second}))
	require.NoError(t, rt.Do(context.Background(), "report", func(context.Context) error {
		clock.Advance(2 * time.Second)
		return nil
	}))
	assert.True(t, rt.IsOpen("report"), "a success slower than SlowCall fails")
}

func TestDoFeedsTheRateWindowAndTheBudget(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, nil, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 100, Window: 10 * time.Second, MinimumRequests: 4, FailureRatio: 0.5,
		RetryBudget: 0.1, MinRetries: 1,
	}))
	ctx := context.Background()
	require.NoError(t, rt.Do(ctx, "cache", succeeds))
	require.NoError(t, rt.Do(ctx, "cache", succeeds))
	assert.True(t, rt.AllowRetryCall(ctx, "cache"), "MinRetries")
	assert.False(t, rt.CanRetryCall(ctx, "cache"), "spent")
	assert.False(t, rt.AllowRetryCall(ctx, "cache"))
	_ = rt.Do(ctx, "cache", fails)
	_ = rt.Do(ctx, "cache", fails)
	assert.True(t, rt.IsOpen("cache"), "half of four calls failed: the rate rule")
	st := rt.Status("cache")
	assert.Equal(t, uint64(1), st.Total.Retries)
	assert.Equal(t, uint64(2), st.Total.RetriesDenied)

	assert.True(t, rt.AllowRetryCall(httpbreaker.WithoutBreaker(ctx), "cache"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.False(t, rt.AllowRetryCall(canceled, "cache"))
}

// A fleet shares these circuits as it shares hosts: failures of calls in
// two members open the key for both, and one probe closes it.
func TestDoCircuitsAreSharedByTheFleet(t *testing.T) {
	store := newMemStore()
	clock := newClock()
	members := make([]*httpbreaker.Transport, 2)
	for i := range members {
		members[i] = newTransport(t, nil, httpbreaker.WithStore(store), httpbreaker.WithClock(clock.Now),
			httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Minute}))
	}
	ctx := context.Background()
	_ = members[0].Do(ctx, "grpc:orders", fails)
	_ = members[1].Do(ctx, "grpc:orders", fails)
	for i, m := range members {
		assert.True(t, m.IsOpen("grpc:orders"), "member %d", i)
	}
	clock.Advance(time.Minute)
	require.NoError(t, members[0].Do(ctx, "grpc:orders", succeeds), "the fleet's probe")
	assert.Equal(t, 1, store.leasesTaken())
	for i, m := range members {
		assert.True(t, m.IsClosed("grpc:orders"), "member %d: the probe closed the fleet's circuit", i)
	}
}

// Every control call races Allow and Do under every rule; nothing leaks.
func TestCallsUnderConcurrency(t *testing.T) {
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 5, ResetTimeout: time.Millisecond, Window: time.Second, FailureRatio: 0.8, Throttle: 2,
		MaxConcurrent: 8, AdaptiveConcurrency: true, RetryBudget: 0.2,
	}))
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprint("k", i%3)
				if i%2 == 0 {
					_ = rt.Do(ctx, key, func(context.Context) error {
						if (i+g)%3 == 0 {
							return errBackend
						}
						return nil
					})
					continue
				}
				if done, err := rt.Allow(httpbreaker.WithCriticality(ctx, httpbreaker.Sheddable), key); err == nil {
					done(httpbreaker.Success)
				}
				rt.AllowRetryCall(ctx, key)
			}
		}()
	}
	for i := range 200 {
		key := fmt.Sprint("k", i%3)
		switch i % 4 {
		case 0:
			rt.Isolate(key)
		case 1:
			rt.ClearState(key)
		case 2:
			_ = rt.Snapshot()
		case 3:
			_ = rt.Status(key)
		}
	}
	close(stop)
	wg.Wait()
	for _, st := range rt.Snapshot() {
		assert.Zero(t, st.InFlight, "%s: every slot came back", st.Host)
	}
}

func TestDoAllocatesNothing(t *testing.T) {
	for _, p := range []httpbreaker.Policy{{}, {MaxConcurrent: 10}} {
		rt := newTransport(t, nil, httpbreaker.WithPolicy(p))
		ctx := context.Background()
		require.NoError(t, rt.Do(ctx, "k", succeeds))
		allocs := testing.AllocsPerRun(100, func() { _ = rt.Do(ctx, "k", succeeds) })
		assert.Zero(t, allocs, "%+v", p)
	}
}

// Holding no slot, a call that panics leaves the circuit as it was.
func TestDoThatPanicsHoldingNothingTellsNothing(t *testing.T) {
	rt := newTransport(t, nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	ctx := context.Background()
	require.PanicsWithValue(t, "boom", func() {
		_ = rt.Do(ctx, "k", func(context.Context) error { panic("boom") })
	})
	assert.True(t, rt.IsClosed("k"))
	assert.Equal(t, httpbreaker.Counts{}, rt.Status("k").Total)
	require.NoError(t, rt.Do(ctx, "k", succeeds))
}
