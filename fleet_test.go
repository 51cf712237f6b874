package httpbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// memStore is an in-process Store that delivers its events synchronously:
// a fleet in one test, without Redis. redisstore's tests cover the real one.
type memStore struct {
	mu       sync.Mutex
	failures map[string]int
	open     map[string]time.Time
	leases   map[string]map[string]bool
	subs     []func(httpbreaker.FleetEvent)
	calls    atomic.Int64
	broken   atomic.Bool
	nextID   int
}

var errStoreDown = errors.New("store down")

func newMemStore() *memStore {
	return &memStore{failures: map[string]int{}, open: map[string]time.Time{}, leases: map[string]map[string]bool{}}
}

func (m *memStore) enter() error {
	m.calls.Add(1)
	if m.broken.Load() {
		return errStoreDown
	}
	m.mu.Lock()
	return nil
}

func (m *memStore) publish(ev httpbreaker.FleetEvent) {
	m.mu.Lock()
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}

func (m *memStore) Failure(_ context.Context, host string) (int, httpbreaker.FleetEvent, error) {
	if err := m.enter(); err != nil {
		return 0, httpbreaker.FleetEvent{}, err
	}
	defer m.mu.Unlock()
	m.failures[host]++
	until, open := m.open[host]
	return m.failures[host], httpbreaker.FleetEvent{Host: host, Open: open, Until: until}, nil
}

func (m *memStore) Success(_ context.Context, host string) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.failures, host)
	return nil
}

func (m *memStore) Open(_ context.Context, host string, until time.Time) error {
	if err := m.enter(); err != nil {
		return err
	}
	m.open[host] = until
	delete(m.failures, host)
	m.mu.Unlock()
	m.publish(httpbreaker.FleetEvent{Host: host, Open: true, Until: until})
	return nil
}

func (m *memStore) Reset(_ context.Context, host string) error {
	if err := m.enter(); err != nil {
		return err
	}
	delete(m.open, host)
	delete(m.failures, host)
	m.mu.Unlock()
	m.publish(httpbreaker.FleetEvent{Host: host})
	return nil
}

func (m *memStore) AcquireProbe(_ context.Context, host string, slots int) (string, bool, error) {
	if err := m.enter(); err != nil {
		return "", false, err
	}
	defer m.mu.Unlock()
	if m.leases[host] == nil {
		m.leases[host] = map[string]bool{}
	}
	if len(m.leases[host]) >= slots {
		return "", false, nil
	}
	m.nextID++
	lease := fmt.Sprint(m.nextID)
	m.leases[host][lease] = true
	return lease, true, nil
}

func (m *memStore) ReleaseProbe(_ context.Context, host, lease string) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.leases[host], lease)
	return nil
}

func (m *memStore) Subscribe(f func(httpbreaker.FleetEvent)) {
	m.mu.Lock()
	m.subs = append(m.subs, f)
	m.mu.Unlock()
}

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
