package redisstore_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/redisstore"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// member is one process of the fleet: its own Redis client, Store and
// Transport, and a channel of the transitions its listener hears.
type member struct {
	rt      *httpbreaker.Transport
	store   *redisstore.Store
	heard   chan string
	trouble chan error
}

func newMember(t *testing.T, srv *redisServer, clk *clock, policy httpbreaker.Policy, opts ...httpbreaker.Option) *member {
	return newMemberWith(t, srv, clk, policy, nil, opts...)
}

// newMemberWith is newMember with more store options.
func newMemberWith(t *testing.T, srv *redisServer, clk *clock, policy httpbreaker.Policy, storeOpts []redisstore.Option,
	opts ...httpbreaker.Option) *member {
	return newMemberOn(t, srv.client(), clk, policy, append([]redisstore.Option{
		redisstore.WithTimeout(2 * time.Second), // generous under -race; the trouble test kills the server instead
		redisstore.WithRetryInterval(time.Millisecond),
	}, storeOpts...), opts...)
}

// newMemberOn is a member over the given client, with more store options.
func newMemberOn(t *testing.T, client redis.UniversalClient, clk *clock, policy httpbreaker.Policy,
	storeOpts []redisstore.Option, opts ...httpbreaker.Option) *member {
	m := &member{heard: make(chan string, 100), trouble: make(chan error, 100)}
	store, err := redisstore.New(client, append([]redisstore.Option{redisstore.WithClock(clk.Now), redisstore.WithPrefix("test"),
		redisstore.WithOnTrouble(func(err error) {
			select {
			case m.trouble <- err:
			default:
			}
		})}, storeOpts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	m.store = store
	m.rt, err = httpbreaker.New(nil, append([]httpbreaker.Option{
		httpbreaker.WithStore(store), httpbreaker.WithClock(clk.Now), httpbreaker.WithPolicy(policy),
		httpbreaker.WithOnStateChange(func(host string, from, to httpbreaker.State) {
			if !strings.HasPrefix(host, "barrier-") { // settle's, not the test's
				m.heard <- from.String() + "->" + to.String()
			}
		}),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(m.rt.CloseIdleConnections)
	t.Cleanup(func() { _ = m.rt.Close() })
	return m
}

// await waits for the member to hear a transition to state (pub/sub is
// asynchronous: the event, not a sleep, is what the test waits for).
func (m *member) await(t *testing.T, to string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-m.heard:
			if strings.HasSuffix(got, "->"+to) {
				return
			}
		case <-timeout:
			t.Fatalf("no transition to %s heard; snapshot: %+v", to, m.rt.Snapshot())
		}
	}
}

func (m *member) get(t *testing.T, url string) (int, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := m.rt.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// gate, when set, holds each request at the upstream until released.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

var gated atomic.Pointer[gate]

func upstream(t *testing.T, status *atomic.Int64, calls *atomic.Int64) *httptest.Server {
	t.Cleanup(func() { gated.Store(nil) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		if g := gated.Load(); g != nil {
			g.entered <- struct{}{}
			<-g.release
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// settle waits until every member has heard every message published so
// far: the channel delivers in order, so once each hears a barrier sent
// now, what came before it has been delivered too. A test that moves the
// fake clocks waits for it first: openings travel as time left, which a
// message delivered after the jump would count from the new time.
func settle(t *testing.T, members ...*member) {
	t.Helper()
	barrier := "barrier-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".test"
	members[0].rt.Isolate(barrier)
	for _, m := range members {
		require.Eventually(t, func() bool { return m.rt.Status(barrier).Isolated }, 10*time.Second, time.Millisecond,
			"every member hears the barrier")
	}
	members[0].rt.ClearState(barrier)
	for _, m := range members {
		require.Eventually(t, func() bool { return !m.rt.Status(barrier).Isolated }, 10*time.Second, time.Millisecond)
	}
}

func fleetOf(t *testing.T, n int, srv *redisServer, clk *clock, policy httpbreaker.Policy, storeOpts ...redisstore.Option) []*member {
	members := make([]*member, n)
	for i := range members {
		members[i] = newMemberWith(t, srv, clk, policy, storeOpts)
	}
	return members
}

// tripBound is the most upstream calls a fleet of n members makes, with
// the upstream failing for all and one call in flight per member, before
// every member refuses (docs/fleet.md). Under a quorum q ≥ 2 the fleet
// opens at the q-th vote: until then at most q−1 members have a run of
// their share ⌈T/q⌉ or more (each stops at T, opened alone) and the others
// at most ⌈T/q⌉−1; then each other member may have one call on its way.
// A quorum of 1 counts the fleet's failures: T, then the others' calls.
func tripBound(threshold, n, quorum int) int {
	if quorum <= 1 {
		return threshold + n - 1
	}
	share := (threshold + quorum - 1) / quorum
	return (quorum-1)*threshold + (n-quorum+1)*(share-1) + n
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// With the upstream failing for every member, the fleet trips within the
// bound, under the default quorum (2) as under a quorum of 1 (any member,
// the old behaviour); then one probe goes through for the fleet, and a
// good one closes every member.
func TestFleetTripsTogetherProbesOnceAndClosesTogether(t *testing.T) {
	for _, quorum := range []int{2, 1} {
		t.Run(fmt.Sprintf("quorum %d", quorum), func(t *testing.T) { tripsTogether(t, quorum) })
	}
}

func tripsTogether(t *testing.T, quorum int) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	const n, threshold = 4, 3
	members := fleetOf(t, n, srv, clk, httpbreaker.Policy{FailureThreshold: threshold, ResetTimeout: time.Minute},
		redisstore.WithQuorum(quorum))

	// 1. Trip together: round robin until every member refuses.
	for round := 0; round < 10; round++ {
		for _, m := range members {
			_, _ = m.get(t, up.URL)
		}
	}
	bound := tripBound(threshold, n, quorum)
	t.Logf("quorum %d: %d upstream calls until every member refused (bound %d; local breakers alone: %d)",
		quorum, calls.Load(), bound, threshold*n)
	assert.LessOrEqual(t, calls.Load(), int64(bound), "fleet-wide upstream calls before every member refuses")
	assert.Less(t, bound, threshold*n, "the fleet trips before local breakers alone would")
	for _, m := range members {
		m.await(t, "open")
		_, err := m.get(t, up.URL)
		require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	}

	// 2. One probe for the fleet: the upstream holds the probe until every
	// other member has been refused. 3. Then the fleet closes together.
	settle(t, members...)
	status.Store(200)
	before := calls.Load()
	hold := make(chan struct{})
	entered := make(chan struct{}, n)
	gated.Store(&gate{entered: entered, release: hold})
	clk.Add(time.Minute)
	results := make(chan error, n)
	for _, m := range members {
		go func() {
			_, err := m.get(t, up.URL)
			results <- err
		}()
	}
	for range n - 1 {
		assert.ErrorIs(t, <-results, httpbreaker.ErrCircuitOpen, "the fleet's only probe lease is taken")
	}
	<-entered
	close(hold)
	require.NoError(t, <-results)
	assert.Equal(t, int64(1), calls.Load()-before, "exactly one probe reached the upstream")
	for _, m := range members {
		m.await(t, "closed")
		code, err := m.get(t, up.URL)
		require.NoError(t, err)
		assert.Equal(t, 200, code)
	}
}

func TestHealthyPathCostsRedisNothing(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	members := fleetOf(t, 3, srv, clk, httpbreaker.Policy{})
	before := srv.commands()
	for range 50 {
		for _, m := range members {
			_, err := m.get(t, up.URL)
			require.NoError(t, err)
		}
	}
	assert.Equal(t, before, srv.commands(), "150 successful requests, no Redis command")
	assert.Equal(t, int64(150), calls.Load())
}

func TestRedisTroubleLeavesEachMemberItsOwnBreaker(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	a := newMember(t, srv, clk, httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Minute})
	b := newMember(t, srv, clk, httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Minute})

	srv.stop()
	for range 2 {
		code, err := a.get(t, up.URL)
		require.NoError(t, err, "no request fails because of the store")
		assert.Equal(t, 500, code)
	}
	assert.True(t, a.rt.IsOpen(up.URL), "a's own breaker tripped")
	assert.True(t, b.rt.IsClosed(up.URL), "b did not hear: Redis is down")
	require.Error(t, <-a.trouble, "the trouble is reported")
	select {
	case err := <-a.trouble:
		t.Fatalf("reported twice in one episode: %v", err)
	default:
	}

	srv.start()
	clk.Add(time.Minute + time.Second) // past a's reset timeout
	status.Store(200)
	code, err := a.get(t, up.URL) // a's probe reaches Redis again: the fleet hears it closed
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.NoError(t, <-a.trouble, "the end of the episode is reported")

	a.rt.Isolate(up.URL) // the fleet works again: b hears the isolation
	b.await(t, "open")
	assert.True(t, b.rt.Status(up.URL).Isolated)
	a.rt.ClearState(up.URL)
	b.await(t, "closed")
}

func TestKeysAreEscapedTaggedAndExpire(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	hostile := []string{"a:b", "{x}", "*", "new\nline", "evil}:open", "%41", "A"}
	byHeader := httpbreaker.WithKeyFunc(func(r *http.Request) string { return r.Header.Get("X-Key") })
	m := newMember(t, srv, clk, httpbreaker.Policy{FailureThreshold: 1, HalfOpenMaxRequests: 2, ResetTimeout: time.Minute}, byHeader)
	for _, k := range hostile {
		req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
		req.Header.Set("X-Key", k)
		if resp, err := m.rt.RoundTrip(req); err == nil {
			_ = resp.Body.Close()
		}
	}
	m.rt.Isolate("quiet")
	c := srv.client()
	keys, err := c.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	shape := regexp.MustCompile(`^test:\{([A-Za-z0-9._%-]+)\}:(open|failures|cleared|votes|probe:\d+)$`)
	tags := map[string]bool{}
	for _, k := range keys {
		match := shape.FindStringSubmatch(k)
		require.NotNil(t, match, "key %q", k)
		tags[match[1]] = true
		ttl, err := c.PTTL(context.Background(), k).Result()
		require.NoError(t, err)
		assert.Positive(t, ttl, "key %q has a TTL", k)
	}
	assert.Len(t, tags, len(hostile)+1, "one tag per host: no collision")
	for _, k := range hostile {
		st := m.rt.Status(k)
		assert.True(t, st.State == httpbreaker.StateOpen, "%q is open on its own", k)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, err := redisstore.New(nil)
	assert.Error(t, err)
	unused := redisClientForOptions()
	defer unused.Close()
	for _, opt := range []redisstore.Option{
		redisstore.WithPrefix(""), redisstore.WithPrefix("a{b"), redisstore.WithTimeout(0),
		redisstore.WithProbeLease(-1), redisstore.WithOnTrouble(nil), redisstore.WithClock(nil), nil,
	} {
		_, err := redisstore.New(unused, opt)
		assert.Error(t, err)
	}
}

func TestSlowRedisCostsAtMostTheTimeout(t *testing.T) {
	srv := startRedis(t)
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	var troubles atomic.Int64
	store, err := redisstore.New(srv.client(), redisstore.WithTimeout(50*time.Millisecond),
		redisstore.WithOnTrouble(func(err error) {
			if err != nil {
				troubles.Add(1)
			}
		}))
	require.NoError(t, err)
	defer store.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithStore(store), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()

	require.NoError(t, syscall.Kill(srv.cmd.Process.Pid, syscall.SIGSTOP)) // Redis hangs
	defer func() { _ = syscall.Kill(srv.cmd.Process.Pid, syscall.SIGCONT) }()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "only the breaker's own refusal")
			continue
		}
		_ = resp.Body.Close()
		assert.Equal(t, 500, resp.StatusCode, "the upstream's answer, not the store's trouble")
	}
	assert.True(t, rt.IsOpen(up.URL), "the local breaker tripped on its own")
	assert.Equal(t, int64(1), troubles.Load(), "one episode, reported once")
}
