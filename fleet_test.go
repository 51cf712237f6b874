package httpbreaker_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// fleet makes n Transports over one base and one store.
func fleet(t *testing.T, n int, base http.RoundTripper, store httpbreaker.Store, opts ...httpbreaker.Option) []*httpbreaker.Transport {
	members := make([]*httpbreaker.Transport, n)
	for i := range members {
		members[i] = newTransport(t, base, append([]httpbreaker.Option{httpbreaker.WithStore(store)}, opts...)...)
	}
	return members
}

func TestFleetTripsTogether(t *testing.T) {
	store := newMemStore()
	base := newFakeBase(func(string) int { return 500 })
	logs := make([]*transitionLog, 4)
	members := make([]*httpbreaker.Transport, 4)
	for i := range members {
		logs[i] = &transitionLog{}
		members[i] = newTransport(t, base, httpbreaker.WithStore(store), httpbreaker.WithOnStateChange(logs[i].listen),
			httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	}
	for range 3 {
		for _, m := range members {
			_, _ = get(t, m, host)
		}
	}
	assert.Equal(t, int64(3), base.calls.Load(), "the fleet's third failure opened every member")
	for i, m := range members {
		assert.True(t, m.IsOpen(host), "member %d", i)
		assert.Equal(t, []string{"api.test: closed -> open"}, logs[i].get(), "member %d hears it", i)
	}
}

func TestFleetProbesOnceAndClosesTogether(t *testing.T) {
	store := newMemStore()
	clock := newClock()
	gate := newGate(200)
	failing := true
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if failing {
			return response(req, 500, ""), nil
		}
		return gate.RoundTrip(req)
	})
	members := fleet(t, 4, base, store, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}))
	_, _ = get(t, members[0], host)
	for _, m := range members {
		require.True(t, m.IsOpen(host))
	}
	failing = false
	clock.At(time.Minute)
	results := make(chan error, len(members))
	for _, m := range members {
		go func() {
			_, err := get(t, m, host)
			results <- err
		}()
	}
	for range len(members) - 1 {
		assert.ErrorIs(t, <-results, httpbreaker.ErrCircuitOpen, "the fleet's probe is taken")
	}
	<-gate.entered
	assert.Equal(t, int64(1), gate.maxSeen.Load())
	close(gate.release)
	require.NoError(t, <-results)
	for i, m := range members {
		assert.True(t, m.IsClosed(host), "member %d closed with the probe", i)
	}
}

func TestFleetHealthyPathCostsTheStoreNothing(t *testing.T) {
	store := newMemStore()
	members := fleet(t, 2, failingHosts(), store)
	for range 100 {
		for _, m := range members {
			_, err := get(t, m, host)
			require.NoError(t, err)
		}
	}
	assert.Zero(t, store.calls.Load())
}

func TestFleetGoesOnAloneWhenTheStoreFails(t *testing.T) {
	store := newMemStore()
	store.broken.Store(true)
	var status atomic.Int64
	status.Store(500)
	members := fleet(t, 2, statusFor(&status), store, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	for range 2 {
		code, err := get(t, members[0], host)
		require.NoError(t, err, "no request fails because of the store")
		assert.Equal(t, 500, code)
	}
	assert.True(t, members[0].IsOpen(host), "the local breaker still trips")
	assert.True(t, members[1].IsClosed(host), "alone: the others did not hear")
	assert.Positive(t, store.calls.Load())
}

func TestFleetIsolationAndClear(t *testing.T) {
	store := newMemStore()
	log := &transitionLog{}
	a := newTransport(t, failingHosts(), httpbreaker.WithStore(store))
	b := newTransport(t, failingHosts(), httpbreaker.WithStore(store), httpbreaker.WithOnStateChange(log.listen))
	a.Isolate(host)
	assert.True(t, b.Status(host).Isolated, "isolation reaches every member")
	_, err := get(t, b, host)
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	a.ClearState(host)
	assert.True(t, b.IsClosed(host))
	assert.Equal(t, []string{"api.test: closed -> open", "api.test: open -> closed"}, log.get())
	_, err = httpbreaker.New(nil, httpbreaker.WithStore(nil))
	assert.ErrorContains(t, err, "WithStore")
}

// A member that starts after the fleet isolated or opened a host learns it
// before its first request: it never sends to that host.
func TestFleetLateJoinerNeverSendsToAnIsolatedHost(t *testing.T) {
	store := newMemStore()
	base := newFakeBase(func(string) int { return 200 })
	early := fleet(t, 1, base, store)[0]
	early.Isolate("api.test")
	late := fleet(t, 1, base, store)[0]
	_, err := get(t, late, host)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.True(t, late.Status("api.test").Isolated)
	assert.Zero(t, base.calls.Load())
}

// ClearState and Isolate act on the fleet even from a member that never saw
// the host (an operator's tool, a fresh pod).
func TestFleetControlsFromAMemberThatNeverSawTheHost(t *testing.T) {
	store := newMemStore()
	members := fleet(t, 2, newFakeBase(func(string) int { return 200 }), store)
	_, _ = get(t, members[0], host)
	members[1].Isolate(host) // members[1] never tracked it
	require.True(t, members[0].IsOpen(host))

	operator := newTransport(t, newFakeBase(func(string) int { return 200 }), httpbreaker.WithStore(quietStore{store}))
	operator.ClearState("api.test")
	assert.False(t, operator.Tracked("api.test"), "the operator never tracked it")
	assert.True(t, members[0].IsClosed(host), "the clear reached the fleet")
	assert.True(t, members[1].IsClosed(host))
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Empty(t, store.open, "the fleet's open key is gone")
}

// quietStore shares memStore's state but delivers nothing: a member that
// never hears of the hosts the fleet knows.
type quietStore struct{ *memStore }

func (quietStore) Subscribe(func(httpbreaker.FleetEvent)) func() { return func() {} }

// Close unsubscribes: a Transport closed no longer hears the fleet, and a
// Store shared by many short-lived Transports keeps no callbacks for them.
func TestFleetCloseUnsubscribes(t *testing.T) {
	store := newMemStore()
	base := newFakeBase(func(string) int { return 200 })
	members := fleet(t, 2, base, store)
	for range 100 {
		tenant := newTransport(t, base, httpbreaker.WithStore(store))
		require.NoError(t, tenant.Close())
		require.NoError(t, tenant.Close(), "twice is fine")
	}
	store.mu.Lock()
	assert.Len(t, store.subs, 2, "only the open Transports are subscribed")
	store.mu.Unlock()
	require.NoError(t, members[1].Close())
	members[0].Isolate(host)
	assert.True(t, members[1].IsClosed(host), "closed: it no longer hears the fleet")
	_, err := get(t, members[1], host)
	assert.NoError(t, err, "and still works on its own")
}

// A probe whose caller gave up while the Store decided is never sent: the
// upstream would see nothing, and the failure would reopen the circuit of
// a host that may be healthy.
func TestFleetProbeIsNotSentAfterTheCallerGaveUp(t *testing.T) {
	clock := newClock()
	store := newMemStore()
	var status atomic.Int64
	status.Store(500)
	base := statusFor(&status)
	rt := fleet(t, 1, base, store, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second}))[0]
	_, _ = get(t, rt, host)
	require.True(t, rt.IsOpen(host))
	status.Store(200)
	clock.At(time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	store.onAcquire = func(context.Context) { cancel() } // a stalled Store outlasts the caller
	calls := base.calls.Load()
	_, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host).WithContext(ctx))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, calls, base.calls.Load(), "no probe sent")
	assert.Equal(t, httpbreaker.StateHalfOpen, rt.State(host), "not reopened")

	store.onAcquire = nil
	code, err := get(t, rt, host)
	require.NoError(t, err, "the slot was given back: the next caller probes")
	assert.Equal(t, 200, code)
	assert.True(t, rt.IsClosed(host))
}

// Store calls carry the request's context values (a trace, say), and the
// probe lease waits on the request's own context.
func TestFleetStoreCallsCarryTheRequestsContext(t *testing.T) {
	type traceKey struct{}
	clock := newClock()
	store := newMemStore()
	rt := fleet(t, 1, newFakeBase(func(string) int { return 500 }), store, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second}))[0]
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), traceKey{}, "trace-1"))
	defer cancel()
	req := mustRequest(t, http.MethodGet, host).WithContext(ctx)
	_, _ = rt.RoundTrip(req) // a failure, an opening
	clock.At(time.Second)
	_, _ = rt.RoundTrip(req.Clone(ctx)) // a probe: lease, result, release
	store.mu.Lock()
	defer store.mu.Unlock()
	require.GreaterOrEqual(t, len(store.contexts), 4)
	for i, c := range store.contexts {
		assert.Equal(t, "trace-1", c.Value(traceKey{}), "call %d", i)
		_, ok := c.Deadline()
		assert.True(t, ok, "call %d is bounded", i)
	}
}

// reportsOf returns the runs a member reported, in order.
func (m *memStore) runs() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	runs := make([]int, len(m.reports))
	for i, r := range m.reports {
		runs[i] = r.Run
	}
	return runs
}

func (m *memStore) leasesTaken() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acquired
}

// A member whose own failures open its circuit without the fleet's verdict
// opens alone: the others go on, it probes without the fleet's lease, and
// its probes speak for itself — a failure is reported as its vote again, a
// success ends its run without closing anyone else's circuit.
func TestFleetMemberOpensAloneWithoutTheFleetsVerdict(t *testing.T) {
	store := newMemStore()
	store.alone.Store(true)
	clock := newClock()
	var sickStatus atomic.Int64
	sickStatus.Store(500)
	policy := httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: time.Minute})
	sickLog, healthyLog := &transitionLog{}, &transitionLog{}
	sick := newTransport(t, statusFor(&sickStatus), httpbreaker.WithStore(store), httpbreaker.WithClock(clock.Now), policy,
		httpbreaker.WithOnStateChange(sickLog.listen))
	healthy := newTransport(t, newFakeBase(func(string) int { return 200 }), httpbreaker.WithStore(store),
		httpbreaker.WithClock(clock.Now), policy, httpbreaker.WithOnStateChange(healthyLog.listen))

	for range 3 {
		_, _ = get(t, sick, host)
		code, err := get(t, healthy, host)
		require.NoError(t, err, "the healthy member never refuses")
		require.Equal(t, 200, code)
	}
	assert.True(t, sick.IsOpen(host), "the sick member opened on its own")
	assert.Equal(t, []int{1, 2, 3}, store.runs(), "every failure reported with the member's run, the one that opened it too")
	store.mu.Lock()
	assert.Empty(t, store.open, "nothing opened for the fleet")
	store.mu.Unlock()

	clock.At(time.Minute) // its own probe fails: reopened alone, reported again
	_, _ = get(t, sick, host)
	assert.True(t, sick.IsOpen(host))
	assert.Zero(t, store.leasesTaken(), "its own probe takes no fleet lease")
	assert.Equal(t, []int{1, 2, 3, 3}, store.runs(), "a failed probe of its own opening renews its vote")

	sickStatus.Store(200)
	clock.At(2 * time.Minute) // a good probe closes it, and ends its run in the fleet
	code, err := get(t, sick, host)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.True(t, sick.IsClosed(host))
	store.mu.Lock()
	assert.Empty(t, store.failures, "its run ended in the store")
	store.mu.Unlock()
	assert.Empty(t, healthyLog.get(), "the healthy member heard nothing: no fleet opening, no fleet closing")
	assert.Equal(t, []string{"api.test: closed -> open", "api.test: open -> half-open", "api.test: half-open -> open",
		"api.test: open -> half-open", "api.test: half-open -> closed"}, sickLog.get())
}

// A member that opened on its own keeps its own probes when the fleet opens
// the host later; the fleet's closing, by another member's probe, closes it
// too.
func TestFleetOwnOpeningKeepsItsProbesWhenTheFleetOpens(t *testing.T) {
	store := newMemStore()
	store.alone.Store(true)
	clock := newClock()
	policy := httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute})
	sick := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithStore(store), httpbreaker.WithClock(clock.Now), policy)
	healthy := newTransport(t, newFakeBase(func(string) int { return 200 }), httpbreaker.WithStore(store), httpbreaker.WithClock(clock.Now), policy)
	_, _ = get(t, sick, host)
	require.True(t, sick.IsOpen(host))
	require.True(t, healthy.IsClosed(host))

	require.NoError(t, store.Open(context.Background(), "api.test", t0.Add(2*time.Minute))) // the fleet opens, until later
	require.True(t, healthy.IsOpen(host))
	assert.Equal(t, t0.Add(2*time.Minute), sick.Status(host).RetryAt, "the sick member adopts the later end")

	clock.At(2 * time.Minute)
	_, _ = get(t, sick, host)
	assert.Zero(t, store.leasesTaken(), "its probe is still its own")
	assert.True(t, sick.IsOpen(host))
	code, err := get(t, healthy, host)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, 1, store.leasesTaken(), "the fleet's probe took the lease")
	assert.True(t, healthy.IsClosed(host))
	assert.True(t, sick.IsClosed(host), "the fleet's closing closes a member's own opening too")
}

// A member whose circuit opens on its own while the fleet's opening is
// already there (a message it missed) joins the fleet's: its probe takes
// the fleet's lease.
func TestFleetOpeningFoundOpenJoinsTheFleet(t *testing.T) {
	store := newMemStore()
	store.alone.Store(true)
	clock := newClock()
	deaf := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithStore(quietStore{store}),
		httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}))
	require.NoError(t, store.Open(context.Background(), "api.test", t0.Add(2*time.Minute)))
	_, _ = get(t, deaf, host) // opens on its own evidence, then hears the fleet's opening in the reply
	require.True(t, deaf.IsOpen(host))
	assert.Equal(t, t0.Add(2*time.Minute), deaf.Status(host).RetryAt, "the fleet's end, learned from the report")
	clock.At(2 * time.Minute)
	_, _ = get(t, deaf, host)
	assert.Equal(t, 1, store.leasesTaken(), "its probe is the fleet's")
}

// A member whose own probe fails while the fleet's opening is in force (a
// message it missed, learned from its report) keeps its probes its own.
func TestFleetOwnProbeStaysOwnWhenItLearnsOfTheFleetsOpening(t *testing.T) {
	store := newMemStore()
	store.alone.Store(true)
	clock := newClock()
	deaf := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithStore(quietStore{store}),
		httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}))
	_, _ = get(t, deaf, host) // opens on its own
	require.NoError(t, store.Open(context.Background(), "api.test", t0.Add(3*time.Minute)))
	clock.At(time.Minute)
	_, _ = get(t, deaf, host) // its own probe fails; the reply says the fleet is open until 3m
	assert.Equal(t, t0.Add(3*time.Minute), deaf.Status(host).RetryAt)
	clock.At(3 * time.Minute)
	_, _ = get(t, deaf, host)
	assert.Zero(t, store.leasesTaken(), "still its own probe")
}
