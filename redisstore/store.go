// Package redisstore shares httpbreaker's circuits across a fleet through
// Redis: every process whose Transport uses a Store over the same Redis
// behaves like one breaker per host.
//
//	store, err := redisstore.New(redis.NewClient(&redis.Options{Addr: "localhost:6379"}))
//	if err != nil { ... }
//	defer store.Close()
//	rt, err := httpbreaker.New(nil, httpbreaker.WithStore(store))
//
// A host opens for the fleet only when a quorum of members each see it
// failing now (WithQuorum, default 2): one member whose own network is
// broken opens its own circuit alone, and the others go on.
//
// A healthy request costs Redis nothing. A failure costs one round trip
// (the fleet's verdict and state come back with it, so a member learns
// of an opening from its own report); an opening, closing, isolation or
// clear costs one round trip and a PUBLISH that every member receives; a
// probe costs one round trip for a lease that expires by itself. Every
// operation is bounded by a short timeout, whatever the client's options;
// while Redis is down, slow or frozen each member goes on with its own
// breaker, the trouble is reported once per episode, and the member rejoins
// when Redis answers again. A ClusterClient reloads its slot map after an
// error, so a failover is followed at once.
//
// Openings travel as the time they have left, and live in Redis as key
// TTLs, never as instants: members' clocks need not agree.
//
// The subscription is watched: a PING after a second of silence, renewed
// when unanswered or broken, then a catch-up (one SCAN of the open keys)
// on what changed meanwhile. A Transport made with the Store learns the
// openings and isolations in force before httpbreaker.New returns. Only a
// ClearState ends an isolation: should Redis lose its keys (a restart
// without persistence, a failover to an empty replica, FLUSHALL, an
// eviction), the members holding an isolation put it back, and a clear
// leaves a record so that they can tell the two apart.
//
// Keys live under the prefix, with the host escaped so that no host can
// collide with or reach into another's keys, and in braces so that a
// host's keys share one Redis Cluster hash slot; every key has a TTL. The
// fleet guide (docs/fleet.md) lists the commands and key patterns a
// least-privilege ACL user needs, and why maxmemory-policy must be
// noeviction.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
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
	voteTTL      time.Duration
	quorum       int
	member       string // this Store's name in the votes, unique and stable for its life
	isolationTTL time.Duration
	retryEvery   time.Duration
	onTrouble    func(error)
	now          func() time.Time
	recheckEvery time.Duration // 0: isolationCheck's default; tests shorten it

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

// WithQuorum sets how many members must see a host failing before its
// circuit opens for the fleet; default 2. A member votes that a host is
// failing while its own run of consecutive failures is at least its share
// of the threshold, ceil(FailureThreshold / n) (3 of 5 for a quorum of 2);
// a vote stands until the member's next success or, unrenewed, for
// WithVoteTTL. When n votes stand, the member whose vote completes them
// opens the host for the fleet. Short of the quorum, a member whose own
// failures reach the threshold opens its own circuit alone and probes it
// alone, and the others go on: one member with a broken network of its
// own cannot open a healthy host for all. 1 is any member, as before
// quorums: the fleet's failures, whoever reports them, open it when they
// reach the threshold. 0 means 2.
func WithQuorum(n int) Option {
	return func(s *Store) error {
		if n < 0 {
			return fmt.Errorf("redisstore: WithQuorum(%d): want 0 (the default, 2) or more", n)
		}
		if n == 0 {
			n = defaultQuorum
		}
		s.quorum = n
		return nil
	}
}

// defaultQuorum is WithQuorum's default.
const defaultQuorum = 2

// WithVoteTTL sets how long a member's vote that a host is failing
// (WithQuorum) stands unless renewed by another failure; default 1
// minute. A member renews its vote with every failure it reports, a failed
// probe of its own opening included, so the quorum counts members that see
// the host failing now; a member that went quiet or restarted (it comes
// back under a new name) stops counting after this long.
func WithVoteTTL(d time.Duration) Option {
	return positive("WithVoteTTL", d, func(s *Store) { s.voteTTL = d })
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
		failureTTL: 10 * time.Minute, voteTTL: time.Minute, quorum: defaultQuorum, member: newMemberName(),
		isolationTTL: 7 * 24 * time.Hour, retryEvery: time.Second,
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

// Member returns the Store's name in the fleet's votes: the host name, the
// process id and a random part, so unique across processes and across the
// Stores of one process, and fixed for the Store's life. It names the
// fields of a host's votes key (prefix:{host}:votes).
func (s *Store) Member() string { return s.member }

// newMemberName makes a Store's member name.
func newMemberName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var random [4]byte
	_, _ = rand.Read(random[:])
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(random[:])
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
		// The operation's goroutine cancels opCtx as soon as it has sent
		// its answer, and a deadline may expire as the answer comes: an
		// answer that is there wins (a lease granted must be used or given
		// back, an isolation written must not be reported lost).
		select {
		case err = <-done:
		default:
			if ctx.Err() != nil {
				return context.Cause(ctx) // the caller gave up: not Redis's trouble
			}
			err = fmt.Errorf("%w after %v", ErrTimeout, timeout)
		}
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
