package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/redisstore"
)

// The fleet's quorum: a member whose own network is what fails must not
// open a healthy host for every member.

// fleetHost is the key every member's calls use: the sick members call it
// through an address that refuses connections (their own broken network),
// the healthy ones through the real upstream.
const fleetHost = "api.test"

var sameHost = httpbreaker.WithKeyFunc(func(*http.Request) string { return fleetHost })

// deadAddress is a loopback URL whose port refuses every connection: a
// member calling it fails as one whose network is broken does.
func deadAddress(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

// traffic sends one call from each member in turn for rounds rounds, the
// sick ones to their dead address, and returns how many calls of the
// healthy members were refused with ErrCircuitOpen.
func traffic(t *testing.T, members []*member, sick map[int]bool, up, dead string, rounds int) (healthyRefused int) {
	for range rounds {
		for i, m := range members {
			url := up
			if sick[i] {
				url = dead
			}
			_, err := m.get(t, url)
			if !sick[i] && errors.Is(err, httpbreaker.ErrCircuitOpen) {
				healthyRefused++
			}
		}
	}
	return healthyRefused
}

// quorumFleet is n members under quorum, every call keyed on fleetHost,
// with a FailureThreshold of 5 and a healthy upstream.
func quorumFleet(t *testing.T, n, quorum int) (*redisServer, *clock, *httptest.Server, []*member) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	policy := httpbreaker.Policy{FailureThreshold: 5, ResetTimeout: time.Minute}
	members := make([]*member, n)
	for i := range members {
		members[i] = newMemberWith(t, srv, clk, policy, []redisstore.Option{redisstore.WithQuorum(quorum)}, sameHost)
	}
	return srv, clk, up, members
}

// The reproduction: four members over one Redis, member 0's calls
// failing with a dial error, members 1–3 healthy, one call each in turn.
// Under the default quorum the healthy members never refuse and the sick
// one opens alone and probes alone; under a quorum of 1 (the old
// behaviour) the sick member opens the host for everyone.
func TestOneSickMemberNeverOpensAHealthyHostForTheFleet(t *testing.T) {
	for _, quorum := range []int{0, 1} {
		t.Run(fmt.Sprintf("WithQuorum(%d)", quorum), func(t *testing.T) {
			srv, clk, up, members := quorumFleet(t, 4, quorum)
			sick := map[int]bool{0: true}
			dead := deadAddress(t)
			refused := traffic(t, members, sick, up.URL, dead, 15)
			require.True(t, members[0].rt.IsOpen(fleetHost), "the sick member opened")
			if quorum == 1 {
				assert.Positive(t, refused, "any member: the sick one opens the host for all")
				return
			}
			assert.Zero(t, refused, "the healthy members never refuse")
			assert.Empty(t, openKey(t, srv, fleetHost), "nothing opened for the fleet")
			for _, m := range members[1:] {
				assert.True(t, m.rt.IsClosed(fleetHost))
			}

			// Its probes are its own: no fleet lease, and the others stay closed.
			clk.Add(time.Minute)
			_, err := members[0].get(t, dead)
			require.Error(t, err)
			assert.True(t, members[0].rt.IsOpen(fleetHost), "its own probe failed: open again, alone")
			probes, err := srv.client().Keys(context.Background(), "test:{"+fleetHost+"}:probe:*").Result()
			require.NoError(t, err)
			assert.Empty(t, probes, "no fleet lease for its own probe")
			assert.Zero(t, traffic(t, members[1:], nil, up.URL, dead, 5))
		})
	}
}

// Two sick members out of five make a quorum of 2: the fleet opens (that
// is what the quorum means); under a quorum of 3 it does not.
func TestTwoSickMembersOfFiveMakeAQuorumOfTwoNotThree(t *testing.T) {
	for _, quorum := range []int{2, 3} {
		t.Run(fmt.Sprintf("WithQuorum(%d)", quorum), func(t *testing.T) {
			srv, _, up, members := quorumFleet(t, 5, quorum)
			refused := traffic(t, members, map[int]bool{0: true, 1: true}, up.URL, deadAddress(t), 15)
			if quorum == 2 {
				assert.Positive(t, refused, "two members see the host failing: the fleet opens")
				return
			}
			assert.Zero(t, refused, "two of a quorum of three: the healthy members go on")
			assert.Empty(t, openKey(t, srv, fleetHost))
		})
	}
}

// A stray failure of a healthy member beside a sick member's long run is
// not a vote: a vote needs a run of the member's share of the threshold.
func TestAStrayFailureBesideALongRunDoesNotOpenTheFleet(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	stray := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(stray.Close)
	members := make([]*member, 3)
	for i := range members {
		members[i] = newMember(t, srv, clk, httpbreaker.Policy{}, sameHost) // the defaults: 5 failures, a share of 3
	}
	dead := deadAddress(t)
	for range 20 { // the sick member's long run: its votes stand
		_, _ = members[0].get(t, dead)
	}
	require.True(t, members[0].rt.IsOpen(fleetHost))
	for _, m := range members[1:] {
		code, err := m.get(t, stray.URL) // one stray failure each, beside the run
		require.NoError(t, err)
		require.Equal(t, http.StatusBadGateway, code)
	}
	assert.Zero(t, traffic(t, members[1:], nil, up.URL, dead, 5), "the healthy members never refuse")
	assert.Empty(t, openKey(t, srv, fleetHost))
}

// A vote stands for the vote TTL: a member that restarted (under a new
// name) or went quiet stops counting after it, by Redis's clock. The votes
// are written here as a member long gone and a member now would cast
// them.
func TestAVoteLapsesAfterTheVoteTTL(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	admin := srv.client()
	ctx := context.Background()
	const ttl = time.Minute
	store := newMemberWith(t, srv, clk, httpbreaker.Policy{}, []redisstore.Option{redisstore.WithVoteTTL(ttl)}).store
	vote := func(member string, age time.Duration) {
		now, err := admin.Time(ctx).Result()
		require.NoError(t, err)
		require.NoError(t, admin.HSet(ctx, "test:{"+fleetHost+"}:votes", member, now.Add(-age).UnixMilli()).Err())
	}
	report := httpbreaker.FailureReport{Host: fleetHost, Run: 3, Threshold: 5}

	vote("restarted/1/old", ttl+time.Second)
	verdict, err := store.Failure(ctx, report)
	require.NoError(t, err)
	assert.False(t, verdict.Trip, "a vote older than the TTL does not count")
	left, err := admin.HExists(ctx, "test:{"+fleetHost+"}:votes", "restarted/1/old").Result()
	require.NoError(t, err)
	assert.False(t, left, "and is dropped")

	vote("other/2/now", 0)
	verdict, err = store.Failure(ctx, report)
	require.NoError(t, err)
	assert.True(t, verdict.Trip, "a vote of now, and this one: the quorum")

	require.NoError(t, admin.Del(ctx, "test:{"+fleetHost+"}:votes").Err())
	vote("other/2/now", 0)
	verdict, err = store.Failure(ctx, httpbreaker.FailureReport{Host: fleetHost, Run: 2, Threshold: 5})
	require.NoError(t, err)
	assert.False(t, verdict.Trip, "a run of 2 is short of the share of 5 for a quorum of 2 (3): no vote")
	require.NoError(t, store.Success(ctx, fleetHost))
	voters, err := admin.HKeys(ctx, "test:{"+fleetHost+"}:votes").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"other/2/now"}, voters, "a success takes back only the member's own vote")
}

// A member's name is stable for its Store's life and unique across Stores
// and processes: the host name, the process id and a random part.
func TestMemberNamesAreUniqueAndStable(t *testing.T) {
	a, err := redisstore.New(redisClientForOptions())
	require.NoError(t, err)
	b, err := redisstore.New(redisClientForOptions())
	require.NoError(t, err)
	assert.NotEqual(t, a.Member(), b.Member(), "two Stores of one process")
	assert.Equal(t, a.Member(), a.Member())
	host, _ := os.Hostname()
	assert.True(t, strings.HasPrefix(a.Member(), host+"/"+strconv.Itoa(os.Getpid())+"/"), a.Member())
	_, err = redisstore.New(redisClientForOptions(), redisstore.WithQuorum(-1))
	assert.ErrorContains(t, err, "WithQuorum(-1)")
	_, err = redisstore.New(redisClientForOptions(), redisstore.WithVoteTTL(0))
	assert.ErrorContains(t, err, "WithVoteTTL")
}

// An answer Redis gave wins over a deadline that expires at the same
// moment: a loop of fast operations never reports a timeout. (The
// operation's goroutine ends its context as it answers, so both were
// ready at once and select could pick either.)
func TestAnAnswerWinsOverATimeoutThatExpiredWithIt(t *testing.T) {
	store, err := redisstore.New(redisClientForOptions())
	require.NoError(t, err)
	for i := range 20000 {
		err := redisstore.Run(store, context.Background(), func(context.Context) error { return nil })
		require.NoError(t, err, "operation %d", i)
	}

	srv := startRedis(t)
	live, err := redisstore.New(srv.client())
	require.NoError(t, err)
	for i := range 2000 {
		lease, ok, err := live.AcquireProbe(context.Background(), fleetHost, 1)
		require.NoError(t, err, "lease %d", i)
		require.True(t, ok, "lease %d", i)
		require.NoError(t, live.ReleaseProbe(context.Background(), fleetHost, lease))
	}
}

// A member sick for everything opens every host it calls on its own, and
// none for the fleet: the healthy members go on with all of them.
func TestAMemberSickForEveryHostOpensThemAllAlone(t *testing.T) {
	srv := startRedis(t)
	clk := &clock{now: t0}
	var status, calls atomic.Int64
	status.Store(200)
	up := upstream(t, &status, &calls)
	members := fleetOf(t, 3, srv, clk, httpbreaker.Policy{FailureThreshold: 3})
	dead := deadAddress(t)
	hosts := []string{"a.test", "b.test", "c.test"}
	call := func(m *member, url, key string) error {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := m.rt.RoundTrip(req.WithContext(httpbreaker.WithKey(req.Context(), key)))
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	for range 10 {
		for _, h := range hosts {
			_ = call(members[0], dead, h)
			for _, m := range members[1:] {
				require.NoError(t, call(m, up.URL, h), "a healthy member never refuses %s", h)
			}
		}
	}
	for _, h := range hosts {
		assert.True(t, members[0].rt.IsOpen(h), "%s open on the sick member", h)
		assert.Empty(t, openKey(t, srv, h), "%s not open for the fleet", h)
	}
}
