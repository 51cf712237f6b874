// Package redisstore shares httpbreaker's circuits across a fleet through
// Redis: every process whose Transport uses a Store over the same Redis
// behaves like one breaker per host.
//
//	store, err := redisstore.New(redis.NewClient(&redis.Options{Addr: "localhost:6379"}))
//	if err != nil { ... }
//	defer store.Close()
//	rt, err := httpbreaker.New(nil, httpbreaker.WithStore(store))
//
// A healthy request costs Redis nothing. A failure costs one round trip
// (the fleet's count comes back with the fleet's state, so a member learns
// of an opening from its own report); an opening, closing, isolation or
// clear costs one round trip and a PUBLISH that every member receives; a
// probe costs one round trip for a lease that expires by itself. Every
// operation is bounded by a short timeout, whatever the client's options;
// while Redis is down, slow or frozen each member goes on with its own
// breaker, the trouble is reported once per episode, and the member rejoins
// when Redis answers again. A ClusterClient reloads its slot map after an
// error, so a failover is followed at once.
//
// The subscription is watched: a PING after a second of silence, renewed
// when unanswered or broken, then a catch-up (one SCAN of the open keys)
// on what changed meanwhile. A Transport made with the Store learns the
// openings and isolations in force before httpbreaker.New returns.
//
// Keys live under the prefix, with the host escaped so that no host can
// collide with or reach into another's keys, and in braces so that a
// host's keys share one Redis Cluster hash slot; every key has a TTL.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpbreaker/httpbreaker"
)

// ErrUnavailable is returned, without a round trip, while Redis is in
// trouble and the next try is not yet due, or while too many operations
// are stuck on it.
var ErrUnavailable = errors.New("redisstore: redis unavailable")

// ErrTimeout is returned when an operation took longer than the Store's
// timeout ([WithTimeout]); the Store stopped waiting for it, whatever the
// client's own timeouts.
var ErrTimeout = errors.New("redisstore: redis timed out")

// maxPending bounds the operations under way at once, stuck ones included.
const maxPending = 64

// Store is an httpbreaker.Store over Redis. It is safe for concurrent use;
// Close stops its subscription.
type Store struct {
	client       redis.UniversalClient
	prefix       string
	timeout      time.Duration
	lease        time.Duration
	failureTTL   time.Duration
	isolationTTL time.Duration
	retryEvery   time.Duration
	onTrouble    func(error)
	now          func() time.Time

	mu       sync.Mutex
	troubled bool      // requires mu
	nextTry  time.Time // requires mu; real time

	// slots bounds the operations under way, abandoned ones included: an
	// operation that outlives the timeout (go-redis reads past a context's
	// deadline unless the client enables ContextTimeoutEnabled) holds its
	// slot until the client gives up, and when every slot is held the Store
	// answers ErrUnavailable at once instead of piling up goroutines.
	slots chan struct{}

	sub subscription
}

var _ httpbreaker.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store) error

// WithPrefix sets the prefix of every key and of the channel; default
// "httpbreaker".
func WithPrefix(prefix string) Option {
	return func(s *Store) error {
		if prefix == "" || strings.ContainsAny(prefix, "{}\r\n\t ") {
			return fmt.Errorf("redisstore: WithPrefix(%q): want a non-empty prefix without braces or spaces", prefix)
		}
		s.prefix = prefix
		return nil
	}
}

// WithTimeout bounds every Redis operation; default 200ms.
func WithTimeout(d time.Duration) Option {
	return positive("WithTimeout", d, func(s *Store) { s.timeout = d })
}

// WithProbeLease sets how long a probe lease lives if its member never
// gives it back; default 30s.
func WithProbeLease(d time.Duration) Option {
	return positive("WithProbeLease", d, func(s *Store) { s.lease = d })
}

// WithFailureTTL sets how long the fleet remembers a run of failures after
// the last one; default 10 minutes.
func WithFailureTTL(d time.Duration) Option {
	return positive("WithFailureTTL", d, func(s *Store) { s.failureTTL = d })
}

// WithIsolationTTL sets how long an isolation lasts in Redis unless
// cleared first (every key has a TTL); default 7 days.
func WithIsolationTTL(d time.Duration) Option {
	return positive("WithIsolationTTL", d, func(s *Store) { s.isolationTTL = d })
}

// WithRetryInterval sets how long the Store leaves Redis alone after an
// error before trying again; default 1s.
func WithRetryInterval(d time.Duration) Option {
	return positive("WithRetryInterval", d, func(s *Store) { s.retryEvery = d })
}

// positive is an option that sets a duration, which must be positive.
func positive(name string, d time.Duration, set func(*Store)) Option {
	return func(s *Store) error {
		if d <= 0 {
			return fmt.Errorf("redisstore: %s(%v): want a positive duration", name, d)
		}
		set(s)
		return nil
	}
}

// WithOnTrouble sets a function told of Redis trouble once per episode:
// with the error when it begins, with nil when Redis answers again.
func WithOnTrouble(f func(err error)) Option {
	return func(s *Store) error {
		if f == nil {
			return errors.New("redisstore: WithOnTrouble(nil)")
		}
		s.onTrouble = f
		return nil
	}
}

// WithClock sets the clock that turns an opening's end into a TTL; give it
// the Transports' clock. Default time.Now. (Retries after trouble are
// timed on the real clock.)
func WithClock(now func() time.Time) Option {
	return func(s *Store) error {
		if now == nil {
			return errors.New("redisstore: WithClock(nil)")
		}
		s.now = now
		return nil
	}
}

// New returns a Store over client. It sends nothing until used.
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: New(nil client)")
	}
	s := &Store{
		client: client, prefix: "httpbreaker", timeout: 200 * time.Millisecond, lease: 30 * time.Second,
		failureTTL: 10 * time.Minute, isolationTTL: 7 * 24 * time.Hour, retryEvery: time.Second,
		onTrouble: func(error) {}, now: time.Now, slots: make(chan struct{}, maxPending),
	}
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("redisstore: option %d of New is nil", i)
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	s.sub.store = s
	return s, nil
}

// key names one of host's keys. The host is escaped, so it cannot hold a
// brace or a colon, and braced, so all its keys share a hash slot.
func (s *Store) key(host, kind string) string {
	return s.prefix + ":{" + escape(host) + "}:" + kind
}

func (s *Store) channel() string { return s.prefix + ":events" }

// hostOf returns the host of a key made by key, and whether it is one.
func (s *Store) hostOf(key, kind string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+":{")
	if !ok {
		return "", false
	}
	escaped, ok := strings.CutSuffix(rest, "}:"+kind)
	if !ok {
		return "", false
	}
	return unescape(escaped)
}

// escape keeps letters, digits, '.', '-' and '_' and writes every other
// byte as %XX: an injective mapping onto a safe alphabet.
func escape(host string) string {
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// run performs one operation within the timeout, or none while Redis is
// in trouble and the next try is not due, and keeps the trouble episode.
// The operation runs on a goroutine of its own, so that the timeout holds
// whatever the client's options: a stalled Redis (a frozen node, a
// partition) costs the caller the timeout, not the client's read timeout.
// If the caller's own ctx ends first, that is no trouble of Redis's.
func (s *Store) run(ctx context.Context, op func(ctx context.Context) error) error {
	return s.runFor(ctx, s.timeout, op)
}

// runFor is run with a bound of its own, for the catch-up's scans.
func (s *Store) runFor(ctx context.Context, timeout time.Duration, op func(ctx context.Context) error) error {
	s.mu.Lock()
	if s.troubled && time.Now().Before(s.nextTry) {
		s.mu.Unlock()
		return ErrUnavailable
	}
	s.mu.Unlock()
	select {
	case s.slots <- struct{}{}:
	default:
		return ErrUnavailable // every slot is held by an operation Redis has not answered
	}
	opCtx, cancel := context.WithTimeout(ctx, timeout)
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.slots }()
		defer cancel()
		done <- op(opCtx)
	}()
	var err error
	select {
	case err = <-done:
	case <-opCtx.Done():
		if ctx.Err() != nil {
			return context.Cause(ctx) // the caller gave up: not Redis's trouble
		}
		err = fmt.Errorf("%w after %v", ErrTimeout, timeout)
	}
	if err != nil && ctx.Err() != nil {
		return err
	}
	s.episode(err)
	return err
}

// episode keeps the trouble episode up to date after an operation that
// returned err, and tells WithOnTrouble when one begins or ends. A Redis
// Cluster client reloads its slot map after an error, so that a failover
// is followed at once rather than after ClusterStateReloadInterval; the end
// of an episode renews the subscription, which may have gone deaf.
func (s *Store) episode(err error) {
	s.mu.Lock()
	began, ended := err != nil && !s.troubled, err == nil && s.troubled
	if err != nil {
		s.troubled, s.nextTry = true, time.Now().Add(s.retryEvery)
	} else {
		s.troubled = false
	}
	s.mu.Unlock()
	if err != nil {
		s.reloadSlots()
	}
	switch {
	case began:
		s.onTrouble(err)
	case ended:
		s.onTrouble(nil)
		s.sub.renew()
	}
}

// reloadSlots asks a Redis Cluster client to reload its slot map, lazily
// (it returns at once), so that a failover is followed without waiting
// for ClusterStateReloadInterval; other clients have none.
func (s *Store) reloadSlots() {
	if cluster, ok := s.client.(*redis.ClusterClient); ok {
		cluster.ReloadState(context.Background())
	}
}

// unescape reverses escape; ok is false for a string escape never makes.
func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// message is what goes over the channel.
type message struct {
	Host    string `json:"host"`
	Open    bool   `json:"open"`
	UntilMS int64  `json:"until_ms,omitempty"` // 0 with Open: isolated
}

func untilMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 1)
}

func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Failure implements httpbreaker.Store.
func (s *Store) Failure(ctx context.Context, host string) (int, httpbreaker.FleetEvent, error) {
	var incr *redis.IntCmd
	var open *redis.StringCmd
	err := s.run(ctx, func(ctx context.Context) error {
		_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			incr = p.Incr(ctx, s.key(host, "failures"))
			p.PExpire(ctx, s.key(host, "failures"), s.failureTTL)
			open = p.Get(ctx, s.key(host, "open"))
			return nil
		})
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return err
	})
	if err != nil {
		return 0, httpbreaker.FleetEvent{}, err
	}
	fleet := httpbreaker.FleetEvent{Host: host}
	if v, err := open.Result(); err == nil {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			fleet.Open, fleet.Until = true, fromMS(ms)
		}
	}
	return int(incr.Val()), fleet, nil
}

// Success implements httpbreaker.Store.
func (s *Store) Success(ctx context.Context, host string) error {
	return s.run(ctx, func(ctx context.Context) error {
		return s.client.Del(ctx, s.key(host, "failures")).Err()
	})
}

// Open implements httpbreaker.Store.
func (s *Store) Open(ctx context.Context, host string, until time.Time) error {
	ttl := s.isolationTTL
	if !until.IsZero() { // outlives the opening by a lease, the probes' time; never beyond an isolation's
		ttl = min(max(until.Sub(s.now()), 0), s.isolationTTL) + s.lease
	}
	msg, _ := json.Marshal(message{Host: host, Open: true, UntilMS: untilMS(until)})
	return s.run(ctx, func(ctx context.Context) error {
		_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, s.key(host, "open"), untilMS(until), ttl)
			p.Del(ctx, s.key(host, "failures"))
			p.Publish(ctx, s.channel(), msg)
			return nil
		})
		return err
	})
}

// Reset implements httpbreaker.Store.
func (s *Store) Reset(ctx context.Context, host string) error {
	msg, _ := json.Marshal(message{Host: host})
	return s.run(ctx, func(ctx context.Context) error {
		_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, s.key(host, "open"), s.key(host, "failures"))
			p.Publish(ctx, s.channel(), msg)
			return nil
		})
		return err
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
