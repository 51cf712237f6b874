package redisstore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
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

// defaultClient is a go-redis client as the README shows it: go-redis's
// defaults (3s reads, ContextTimeoutEnabled off), closed with the test.
func defaultClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A frozen Redis (SIGSTOP: connections open, no replies) with a default
// client: each call waits the Store's timeout, not go-redis's 3s read
// timeout; no request fails because of the store, and a half-open member
// still probes a healthy upstream instead of failing its caller.
func TestStalledRedisCostsTheStoreTimeoutAndNoRequest(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	m := newMemberOn(t, defaultClient(t, srv.addr()), clk, httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Minute},
		[]redisstore.Option{redisstore.WithTimeout(200 * time.Millisecond), redisstore.WithRetryInterval(time.Hour)})

	require.NoError(t, syscall.Kill(srv.cmd.Process.Pid, syscall.SIGSTOP))
	defer func() { _ = syscall.Kill(srv.cmd.Process.Pid, syscall.SIGCONT) }()
	started := time.Now()
	for range 2 {
		code, err := m.get(t, up.URL)
		require.NoError(t, err, "no request fails because of the store")
		assert.Equal(t, 500, code)
	}
	t.Logf("two failures with Redis frozen took %v", time.Since(started))
	trouble := <-m.trouble
	assert.ErrorIs(t, trouble, redisstore.ErrTimeout, "the Store's own bound fired, not go-redis's read timeout")
	require.True(t, m.rt.IsOpen(up.URL), "the local breaker tripped on its own")

	// Half-open with Redis still frozen: the probe goes out on the caller's
	// deadline and closes the circuit.
	status.Store(200)
	clk.Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL, nil)
	resp, err := m.rt.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.True(t, m.rt.IsClosed(up.URL))
}

// Operations stuck on a frozen Redis are bounded: past a few dozen, the
// Store answers at once instead of piling up goroutines (a client with a
// large pool lets every one of them take a connection and wait).
func TestStuckOperationsAreBounded(t *testing.T) {
	srv := startRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.addr(), PoolSize: 1000})
	defer client.Close()
	store, err := redisstore.New(client, redisstore.WithTimeout(20*time.Millisecond),
		redisstore.WithRetryInterval(time.Nanosecond))
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, syscall.Kill(srv.cmd.Process.Pid, syscall.SIGSTOP))
	var unavailable int
	goroutines := runtime.NumGoroutine()
	for i := range 200 {
		_, err := store.Failure(context.Background(), httpbreaker.FailureReport{Host: "api.test", Run: 1, Threshold: 5})
		require.Error(t, err, "call %d", i)
		if errors.Is(err, redisstore.ErrUnavailable) {
			unavailable++
		}
	}
	assert.Positive(t, unavailable, "once every slot is held by a stuck operation, the Store answers at once")
	assert.Less(t, runtime.NumGoroutine()-goroutines, 100, "stuck operations are bounded")
	require.NoError(t, syscall.Kill(srv.cmd.Process.Pid, syscall.SIGCONT)) // stuck operations end: goleak checks
}

// A member that starts after the fleet isolated a host never sends to it.
func TestLateJoinerNeverSendsToAnIsolatedHost(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	early := newMember(t, srv, clk, httpbreaker.Policy{})
	early.rt.Isolate(up.URL)
	early.rt.Isolate("other.test")

	late := newMemberOn(t, defaultClient(t, srv.addr()), clk, httpbreaker.Policy{}, nil)
	_, err := late.get(t, up.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.Zero(t, calls.Load(), "the late joiner sent nothing to the isolated host")
	assert.True(t, late.rt.Status("other.test").Isolated)
}

// quietStore is a Store whose Transport hears nothing from the fleet: an
// operator's tool that never tracked any host.
type quietStore struct{ *redisstore.Store }

func (quietStore) Subscribe(func(httpbreaker.FleetEvent)) func() { return func() {} }

// ClearState and Isolate reach the fleet from a member that never tracked
// the host.
func TestControlsFromAMemberThatNeverTrackedTheHost(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	a := newMember(t, srv, clk, httpbreaker.Policy{})
	store, err := redisstore.New(srv.client(), redisstore.WithPrefix("test"))
	require.NoError(t, err)
	defer store.Close()
	operator, err := httpbreaker.New(nil, httpbreaker.WithStore(quietStore{store}))
	require.NoError(t, err)

	operator.Isolate(up.URL)
	a.await(t, "open")
	require.False(t, operator.Tracked(up.URL) && !operator.Status(up.URL).Isolated)
	operator.ClearState(up.URL)
	a.await(t, "closed")
	n, err := srv.client().Exists(context.Background(), "test:{127.0.0.1%3A"+portOf(up.URL)+"}:open").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the fleet's open key is gone")
}

func portOf(url string) string {
	_, port, _ := net.SplitHostPort(url[len("http://"):])
	return port
}

// Closed Transports no longer hear the fleet; the Store keeps no callback
// of theirs.
func TestClosedTransportsStopHearing(t *testing.T) {
	srv := startRedis(t)
	store, err := redisstore.New(srv.client(), redisstore.WithPrefix("test"))
	require.NoError(t, err)
	defer store.Close()
	var heard atomic.Int64
	for range 20 {
		rt, err := httpbreaker.New(nil, httpbreaker.WithStore(store),
			httpbreaker.WithOnStateChange(func(string, httpbreaker.State, httpbreaker.State) { heard.Add(1) }))
		require.NoError(t, err)
		require.NoError(t, rt.Close())
	}
	clk := &clock{now: t0}
	a, b := newMember(t, srv, clk, httpbreaker.Policy{}), newMember(t, srv, clk, httpbreaker.Policy{})
	var live atomic.Int64
	c, err := httpbreaker.New(nil, httpbreaker.WithStore(store),
		httpbreaker.WithOnStateChange(func(string, httpbreaker.State, httpbreaker.State) { live.Add(1) }))
	require.NoError(t, err)
	defer c.Close()
	a.rt.Isolate("api.test")
	b.await(t, "open")
	a.rt.ClearState("api.test")
	b.await(t, "closed")
	require.Eventually(t, func() bool { return live.Load() == 2 }, 10*time.Second, time.Millisecond,
		"the open Transport on the shared Store hears both") // pub/sub is asynchronous
	assert.Zero(t, heard.Load(), "the closed ones hear nothing")
}

// proxy forwards loopback connections to Redis and can cut them all, as a
// partition or a dead node would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

// cut closes every connection made so far.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// A subscription cut while the fleet changed catches up: the member learns
// the isolation it missed, and the clearing of one it was told of.
func TestSubscriptionGapIsCaughtUp(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	px := newProxy(t, srv.addr())
	a := newMemberOn(t, defaultClient(t, px.addr()), clk, httpbreaker.Policy{},
		[]redisstore.Option{redisstore.WithRetryInterval(10 * time.Millisecond)})
	b := newMember(t, srv, clk, httpbreaker.Policy{})
	b.rt.Isolate("old.test")
	a.await(t, "open")

	px.cut() // a's subscription breaks; go-redis reconnects by itself
	b.rt.Isolate("new.test")
	b.rt.ClearState("old.test")
	require.Eventually(t, func() bool {
		return a.rt.Status("new.test").Isolated && !a.rt.Status("old.test").Isolated
	}, 10*time.Second, 5*time.Millisecond, "a caught up: %+v", a.rt.Snapshot())
}
