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

// failure counts a failure: KEYS are the failures and open keys, ARGV the
// failures' TTL in ms; it returns the count and, if open, the open key's
// value and PTTL.
var failure = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local v = redis.call('GET', KEYS[2])
if not v then return {n} end
return {n, v, redis.call('PTTL', KEYS[2])}`)

// Failure implements httpbreaker.Store. The fleet's opening comes back
// with the count, its end read from the open key's PTTL: Redis's clock,
// not the member's that opened it.
func (s *Store) Failure(ctx context.Context, host string) (int, httpbreaker.FleetEvent, error) {
	keys := []string{s.key(host, "failures"), s.key(host, "open")}
	var reply []any
	err := s.run(ctx, func(ctx context.Context) error {
		var err error
		reply, err = failure.Run(ctx, s.client, keys, s.failureTTL.Milliseconds()).Slice()
		return err
	})
	if err != nil {
		return 0, httpbreaker.FleetEvent{}, err
	}
	fleet := httpbreaker.FleetEvent{Host: host}
	n, _ := reply[0].(int64)
	if len(reply) == 3 {
		value, _ := reply[1].(string)
		pttl, _ := reply[2].(int64)
		if o, ok := parseOpening(value, time.Duration(pttl)*time.Millisecond, s.now); ok {
			fleet.Open, fleet.Until = true, o.until(s.now)
		}
	}
	return int(n), fleet, nil
}

// Success implements httpbreaker.Store.
func (s *Store) Success(ctx context.Context, host string) error {
	return s.run(ctx, func(ctx context.Context) error {
		return s.client.Del(ctx, s.key(host, "failures")).Err()
	})
}

// open opens a host for the fleet and tells every member: KEYS are the
// open, failures and cleared keys; ARGV the value, its TTL in ms, "1" for
// an isolation (which deletes the record of an earlier clear), the channel
// and the message.
var open = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
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
	keys := []string{s.key(host, "open"), s.key(host, "failures"), s.key(host, "cleared")}
	return s.run(ctx, func(ctx context.Context) error {
		return open.Run(ctx, s.client, keys, value, ttl.Milliseconds(), isolation, s.channel(), openMessage(host, o)).Err()
	})
}

// reset closes a host for the fleet and tells every member. Unless it
// closes a plain opening (which ends by itself anyway), it leaves a record
// that the host was cleared, for WithIsolationTTL: a member that missed the
// message can then tell an isolation cleared from one Redis lost.
var reset = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
if not v or string.sub(v, 1, 1) ~= 'o' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`)

// Reset implements httpbreaker.Store.
func (s *Store) Reset(ctx context.Context, host string) error {
	keys := []string{s.key(host, "open"), s.key(host, "failures"), s.key(host, "cleared")}
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
