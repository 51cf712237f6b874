package redisstore_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/redisstore"
)

// The fleet on a second bad day: Redis loses its keys, clocks disagree,
// keys are not UTF-8, the ACL is tight, memory is full.

// openKey reads a host's open key as Redis holds it ("" if none).
func openKey(t *testing.T, srv *redisServer, host string) string {
	t.Helper()
	v, err := srv.client().Get(context.Background(), "test:{"+host+"}:open").Result()
	if err == redis.Nil {
		return ""
	}
	require.NoError(t, err)
	return v
}

// Redis restarted without persistence (or failed over to an empty
// replica) loses every key: the members holding an isolation put it back,
// so it lasts until ClearState, and a member that joins afterwards never
// sends to the host. A plain opening lost with it is closed: losing one
// early costs a few calls.
func TestIsolationSurvivesARestartWithoutPersistence(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	a := newMember(t, srv, clk, httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Hour})
	b := newMember(t, srv, clk, httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Hour})
	a.rt.Isolate("maintenance.test")
	b.await(t, "open")
	_, _ = a.get(t, up.URL) // a 500 each: two votes, a plain opening for the fleet
	_, _ = b.get(t, up.URL)
	b.await(t, "open")
	a.await(t, "open")
	require.NotEmpty(t, openKey(t, srv, "maintenance.test"))

	srv.stop()
	srv.start() // the same port, nothing in it
	require.Eventually(t, func() bool { return openKey(t, srv, "maintenance.test") != "" },
		10*time.Second, 5*time.Millisecond, "a member put the isolation back")
	b.await(t, "closed") // the plain opening, lost
	assert.True(t, a.rt.Status("maintenance.test").Isolated, "only ClearState ends an isolation")
	assert.True(t, b.rt.Status("maintenance.test").Isolated)

	late := newMemberOn(t, defaultClient(t, srv.addr()), clk, httpbreaker.Policy{}, nil)
	assert.True(t, late.rt.Status("maintenance.test").Isolated, "a member that joins afterwards knows")

	b.rt.ClearState("maintenance.test")
	require.Eventually(t, func() bool {
		return !a.rt.Status("maintenance.test").Isolated && !late.rt.Status("maintenance.test").Isolated
	}, 10*time.Second, 5*time.Millisecond, "the clear reaches every member")
	srv.stop()
	srv.start()
	b.rt.Isolate("other.test") // something to wait for: every member is subscribed again
	for _, m := range []*member{a, late} {
		require.Eventually(t, func() bool { return m.rt.Status("other.test").Isolated }, 10*time.Second, 5*time.Millisecond)
	}
	assert.Empty(t, openKey(t, srv, "maintenance.test"), "a cleared isolation is never put back")
	assert.False(t, a.rt.Status("maintenance.test").Isolated)
}

// FLUSHALL, or an eviction under an allkeys policy, loses keys without any
// gap in the subscription: the members' recheck of the isolations they
// hold puts them back.
func TestIsolationSurvivesFlushallWithoutAGap(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	a := newMember(t, srv, clk, httpbreaker.Policy{})
	redisstore.SetIsolationCheck(a.store, 20*time.Millisecond)
	a.rt.Isolate("maintenance.test")
	require.NotEmpty(t, openKey(t, srv, "maintenance.test"))
	require.NoError(t, srv.client().FlushAll(context.Background()).Err())
	require.Eventually(t, func() bool { return openKey(t, srv, "maintenance.test") != "" },
		10*time.Second, 5*time.Millisecond, "the recheck put it back")
	assert.True(t, a.rt.Status("maintenance.test").Isolated)

	a.rt.ClearState("maintenance.test")
	a.await(t, "closed")
	for range 3 { // a few rechecks: nothing comes back
		require.NoError(t, srv.client().FlushAll(context.Background()).Err())
		assert.Empty(t, openKey(t, srv, "maintenance.test"))
	}
}

// Members' clocks disagree by up to ten minutes, either way: an opening
// lasts as long as the member that opened it meant, on every member, and
// the fleet still trips together.
func TestClockSkewChangesNothing(t *testing.T) {
	for _, skew := range []time.Duration{30 * time.Second, -30 * time.Second, 10 * time.Minute, -10 * time.Minute} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			srv := startRedis(t)
			var status, calls atomic.Int64
			status.Store(500)
			up := upstream(t, &status, &calls)
			// A threshold of 2 under the quorum of 2: each member's first
			// failure is a vote, and neither opens on its own.
			policy := httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Second}
			trueClock, offClock := &clock{now: t0}, &clock{now: t0.Add(skew)}
			off := newMember(t, srv, offClock, policy)
			right := newMember(t, srv, trueClock, policy)

			_, _ = right.get(t, up.URL)
			_, _ = off.get(t, up.URL) // the member with the wrong clock completes the quorum and trips the fleet
			off.await(t, "open")
			right.await(t, "open")
			_, err := right.get(t, up.URL)
			require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
			var open *httpbreaker.OpenError
			require.ErrorAs(t, err, &open)
			assert.WithinDuration(t, trueClock.Now().Add(time.Second), open.RetryAt, 100*time.Millisecond,
				"open for the reset timeout by the true clock")
			trueClock.Add(time.Second + 100*time.Millisecond)
			assert.Equal(t, httpbreaker.StateHalfOpen, right.rt.State(up.URL), "a probe is due")
			assert.Equal(t, int64(2), calls.Load(), "two upstream calls, one vote each, tripped the fleet")

			// And the other way: the true clock trips, the wrong one follows for the same time.
			const host2 = "second.test"
			byKey := func(m *member) error {
				req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
				resp, err := m.rt.RoundTrip(req.WithContext(httpbreaker.WithKey(req.Context(), host2)))
				if err == nil {
					_ = resp.Body.Close()
				}
				return err
			}
			require.NoError(t, byKey(off))
			require.NoError(t, byKey(right))
			off.await(t, "open")
			require.ErrorAs(t, byKey(off), &open)
			assert.WithinDuration(t, offClock.Now().Add(time.Second), open.RetryAt, 100*time.Millisecond)
		})
	}
}

// A key is bytes: an isolation of a key that is not UTF-8 reaches the
// other members as exactly that key, and so does its clear.
func TestKeysThatAreNotUTF8TravelExactly(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	a := newMember(t, srv, clk, httpbreaker.Policy{})
	b := newMember(t, srv, clk, httpbreaker.Policy{})
	const latin1, other = "caf\xe9.example", "caf\xe8.example"
	req, _ := http.NewRequest(http.MethodGet, up.URL, nil)
	resp, err := a.rt.RoundTrip(req.WithContext(httpbreaker.WithKey(req.Context(), latin1)))
	require.NoError(t, err)
	_ = resp.Body.Close()

	a.rt.Isolate(latin1)
	b.await(t, "open")
	assert.True(t, b.rt.Status(latin1).Isolated)
	assert.Equal(t, []string{latin1}, hostsOf(b.rt), "no U+FFFD in the key")
	assert.False(t, b.rt.Tracked(other))
	a.rt.ClearState(latin1)
	b.await(t, "closed")
	assert.False(t, b.rt.Status(latin1).Isolated)
}

func hostsOf(rt *httpbreaker.Transport) []string {
	var keys []string
	for _, st := range rt.Snapshot() {
		keys = append(keys, st.Host)
	}
	return keys
}

// fleetACL is the least-privilege ACL of the README, for the prefix
// "test": the commands the Store sends (scripts' included) on its keys and
// its channel.
const fleetACL = "on >secret resetkeys ~test:* resetchannels &test:events -@all " +
	"+get +set +del +exists +incr +pexpire +pttl +hset +hdel +hgetall +time +scan +eval +evalsha " +
	"+publish +subscribe +ping +hello +auth"

// A fleet whose Redis user has only the README's ACL works: trips
// together, probes once even after SCRIPT FLUSH (go-redis falls back to
// EVAL), isolates and clears, and reports no trouble.
func TestLeastPrivilegeACLUser(t *testing.T) {
	srv := startRedis(t)
	admin := srv.client()
	require.NoError(t, admin.Do(context.Background(), append([]any{"ACL", "SETUSER", "fleet"}, toAny(strings.Fields(fleetACL))...)...).Err())
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(500)
	up := upstream(t, &status, &calls)
	policy := httpbreaker.Policy{FailureThreshold: 2, ResetTimeout: time.Minute}
	members := make([]*member, 3)
	for i := range members {
		client := redis.NewClient(&redis.Options{Addr: srv.addr(), Username: "fleet", Password: "secret", MaxRetries: -1})
		t.Cleanup(func() { _ = client.Close() })
		members[i] = newMemberOn(t, client, clk, policy, []redisstore.Option{redisstore.WithTimeout(2 * time.Second)})
	}
	for range 3 {
		for _, m := range members {
			_, _ = m.get(t, up.URL)
		}
	}
	for _, m := range members {
		m.await(t, "open")
	}
	settle(t, members...)
	require.NoError(t, admin.ScriptFlush(context.Background()).Err())
	status.Store(200)
	before := calls.Load()
	clk.Add(time.Minute)
	hold := make(chan struct{})
	entered := make(chan struct{}, len(members))
	gated.Store(&gate{entered: entered, release: hold})
	results := make(chan error, len(members))
	for _, m := range members {
		go func() {
			_, err := m.get(t, up.URL)
			results <- err
		}()
	}
	for range len(members) - 1 {
		assert.ErrorIs(t, <-results, httpbreaker.ErrCircuitOpen, "one probe lease for the fleet")
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no probe reached the upstream")
	}
	close(hold)
	require.NoError(t, <-results)
	assert.Equal(t, int64(1), calls.Load()-before, "exactly one probe")
	gated.Store(nil)
	members[0].rt.Isolate("x.test")
	members[1].await(t, "open")
	members[2].rt.ClearState("x.test")
	members[1].await(t, "closed")
	for _, m := range members {
		select {
		case err := <-m.trouble:
			t.Fatalf("trouble under the ACL: %v", err)
		default:
		}
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Out of memory, Redis refuses the Store's writes: WithOnTrouble hears
// why, not only "EXECABORT Transaction discarded".
func TestOutOfMemoryIsReportedWithItsCause(t *testing.T) {
	srv := startRedis(t)
	admin := srv.client()
	require.NoError(t, admin.ConfigSet(context.Background(), "maxmemory-policy", "noeviction").Err())
	require.NoError(t, admin.ConfigSet(context.Background(), "maxmemory", "1").Err())
	m := newMember(t, srv, &clock{now: t0}, httpbreaker.Policy{})
	m.rt.Isolate("x.test")
	err := <-m.trouble
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OOM command not allowed")
}
