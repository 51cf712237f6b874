package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpbreaker/httpbreaker"
)

// The httpbreaker.Store methods: one round trip each, bounded by run.

// The Store's writes are Lua scripts rather than MULTI/EXEC: one round
// trip either way, but a refused script says why ("OOM command not allowed
// when used memory > 'maxmemory'", "NOPERM …"), where go-redis reports a
// refused transaction only as "EXECABORT Transaction discarded".

// failure counts a failure and judges it. KEYS are the failures, open
// and votes keys; ARGV the failures' TTL in ms, the member, its run, its
// threshold, the quorum and the votes' TTL in ms. It returns the fleet's
// count, 1 if the fleet's case is made (0 if not) and, if open, the open
// key's value and PTTL.
//
// With a quorum of 1 the fleet's count decides, as before quorums: the
// case is made when it, or the member's own run, reaches the threshold.
// Otherwise the votes do: a member votes while its own run is at least its
// share of the threshold, ceil(threshold / quorum); a vote lives in the
// votes hash as the time it was cast, by Redis's clock, and stands for the
// votes' TTL unless renewed; the case is made when quorum members' votes
// stand. A run below the share takes the member's vote back.
var failure = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local run, threshold, quorum, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local trip = 0
if quorum <= 1 then
  if n >= threshold or run >= threshold then trip = 1 end
elseif run < math.ceil(threshold / quorum) then
  redis.call('HDEL', KEYS[3], ARGV[2])
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[3], ARGV[2], now)
  redis.call('PEXPIRE', KEYS[3], ttl)
  local votes = 0
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    local at = tonumber(all[i + 1])
    if at and now - at < ttl then
      votes = votes + 1
    else
      redis.call('HDEL', KEYS[3], all[i])
    end
  end
  if votes >= quorum then trip = 1 end
end
local v = redis.call('GET', KEYS[2])
if not v then return {n, trip} end
return {n, trip, v, redis.call('PTTL', KEYS[2])}`)

// Failure implements httpbreaker.Store. The fleet's opening comes back
// with the verdict, its end read from the open key's PTTL: Redis's clock,
// not the member's that opened it.
func (s *Store) Failure(ctx context.Context, r httpbreaker.FailureReport) (httpbreaker.FleetVerdict, error) {
	keys := []string{s.key(r.Host, "failures"), s.key(r.Host, "open"), s.key(r.Host, "votes")}
	var reply []any
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		reply, err = failure.Run(ctx, s.client, keys, s.failureTTL.Milliseconds(), s.member,
			r.Run, max(r.Threshold, 1), s.quorum, s.voteTTL.Milliseconds()).Slice()
		return err
	})
	if err != nil {
		return httpbreaker.FleetVerdict{}, err
	}
	verdict := httpbreaker.FleetVerdict{Fleet: httpbreaker.FleetEvent{Host: r.Host}}
	if len(reply) >= 2 {
		trip, _ := reply[1].(int64)
		verdict.Trip = trip == 1
	}
	if len(reply) == 4 {
		value, _ := reply[2].(string)
		pttl, _ := reply[3].(int64)
		if o, ok := parseOpening(value, time.Duration(pttl)*time.Millisecond, s.now); ok {
			verdict.Fleet.Open, verdict.Fleet.Until = true, o.until(s.now)
		}
	}
	return verdict, nil
}

// success ends a member's run: KEYS are the failures and votes keys, ARGV
// the member. Any member's success ends the fleet's count (a quorum of 1
// counts the fleet's consecutive failures); only the member's own vote is
// taken back.
var success = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`)

// Success implements httpbreaker.Store.
func (s *Store) Success(ctx context.Context, host string) error {
	keys := []string{s.key(host, "failures"), s.key(host, "votes")}
	return s.run(ctx, func(ctx context.Context) error {
		return success.Run(ctx, s.client, keys, s.member).Err()
	})
}

// open opens a host for the fleet and tells every member: KEYS are the
// open, failures, cleared and votes keys; ARGV the value, its TTL in ms,
// "1" for an isolation (which deletes the record of an earlier clear), the
// channel and the message. The failures and votes that made the case are
// spent.
var open = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2], KEYS[4])
if ARGV[3] == '1' then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`)

// Open implements httpbreaker.Store. What travels is the time the opening
// has left by this member's clock, never the instant it ends: a member
// whose clock is off opens the others for as long as it meant. The key
// outlives an opening by a lease, the probes' time, and lasts
// WithIsolationTTL for an isolation. An isolation deletes the record of an
// earlier clear; a plain opening leaves it, so that its own closing later
// still tells an isolation cleared before it from one lost.
func (s *Store) Open(ctx context.Context, host string, until time.Time) error {
	o := opening{isolated: until.IsZero()}
	value, ttl, isolation := isolatedValue, s.isolationTTL, "1"
	if !o.isolated {
		o.left = min(max(until.Sub(s.now()), 0), s.isolationTTL)
		value, ttl, isolation = openValue(s.lease), o.left+s.lease, "0"
	}
	keys := []string{s.key(host, "open"), s.key(host, "failures"), s.key(host, "cleared"), s.key(host, "votes")}
	return s.run(ctx, func(ctx context.Context) error {
		return open.Run(ctx, s.client, keys, value, ttl.Milliseconds(), isolation, s.channel(), openMessage(host, o)).Err()
	})
}

// reset closes a host for the fleet, forgets its failures and votes, and
// tells every member: KEYS are the open, failures, cleared and votes keys.
// Unless it closes a plain opening (which ends by itself anyway), it
// leaves a record that the host was cleared, for WithIsolationTTL: a
// member that missed the message can then tell an isolation cleared from
// one Redis lost.
var reset = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
if not v or string.sub(v, 1, 1) ~= 'o' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`)

// Reset implements httpbreaker.Store.
func (s *Store) Reset(ctx context.Context, host string) error {
	keys := []string{s.key(host, "open"), s.key(host, "failures"), s.key(host, "cleared"), s.key(host, "votes")}
	return s.run(ctx, func(ctx context.Context) error {
		return reset.Run(ctx, s.client, keys, s.channel(), closeMessage(host), s.isolationTTL.Milliseconds()).Err()
	})
}

// acquire takes the first free slot of KEYS, each a probe lease.
var acquire = redis.NewScript(`
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then return i end
end
return 0`)

// release deletes a lease only if it is still ours.
var release = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// AcquireProbe implements httpbreaker.Store.
func (s *Store) AcquireProbe(ctx context.Context, host string, slots int) (string, bool, error) {
	keys := make([]string, max(slots, 1))
	for i := range keys {
		keys[i] = s.key(host, "probe:"+strconv.Itoa(i))
	}
	var token [8]byte
	_, _ = rand.Read(token[:])
	id := hex.EncodeToString(token[:])
	var slot int64
	err := s.run(ctx, func(ctx context.Context) error {
		n, err := acquire.Run(ctx, s.client, keys, id, s.lease.Milliseconds()).Int64()
		slot = n
		return err
	})
	if err != nil || slot == 0 {
		return "", false, err
	}
	return strconv.FormatInt(slot-1, 10) + ":" + id, true, nil
}

// ReleaseProbe implements httpbreaker.Store.
func (s *Store) ReleaseProbe(ctx context.Context, host, lease string) error {
	slot, id, ok := strings.Cut(lease, ":")
	if !ok {
		return fmt.Errorf("redisstore: malformed lease %q", lease)
	}
	return s.run(ctx, func(ctx context.Context) error {
		return release.Run(ctx, s.client, []string{s.key(host, "probe:"+slot)}, id).Err()
	})
}
