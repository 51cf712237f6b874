package redisstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpbreaker/httpbreaker"
)

// subscription keeps one Redis subscription for every Transport that
// subscribed to the Store. It renews it when it may have gone deaf — when a
// trouble episode ends, when its connection broke, or when a PING on it
// goes unanswered (a frozen node, which go-redis's own health check, which
// only writes its PING, never notices) — and then catches the subscribers
// up on what changed meanwhile: the openings and isolations in force, and
// the closings of hosts they were told were open. A new subscriber is
// caught up before Subscribe returns.
type subscription struct {
	store *Store

	mu sync.Mutex
	// subs are the subscribers by id; requires mu.
	subs map[int]func(httpbreaker.FleetEvent)
	next int
	// started is set once the keeper runs; closed once Close stopped it;
	// both require mu.
	started, closed bool
	// behind is set when a catch-up failed: the keeper tries again;
	// requires mu.
	behind  bool
	renewal chan struct{} // a renewal is wanted
	stop    chan struct{} // Close
	done    chan struct{} // the keeper has stopped

	// delivery serialises what subscribers hear, from messages and from
	// catch-ups, so they hear it in order.
	delivery sync.Mutex
	// lastNode is the Cluster node subscribed through last; only the keeper
	// uses it.
	lastNode string

	// told are the hosts the subscribers were last told are open, and
	// whether each is isolated; requires delivery.
	told map[string]bool
	// isolated counts the isolations in told; requires delivery.
	isolated int
}

// keeperTick is how often the keeper checks the subscription.
const keeperTick = 250 * time.Millisecond

// suspectTopology is how long a Cluster's slot map is reloaded each tick
// after its subscription went deaf.
const suspectTopology = 30 * time.Second

// quietWait is how long the subscription may stay silent before it is
// PINGed, and then how long the PONG may take: a frozen node is noticed
// within twice this.
func (s *Store) quietWait() time.Duration { return max(time.Second, 5*s.timeout) }

// catchUpTimeout bounds a catch-up's scan of the open keys.
func (s *Store) catchUpTimeout() time.Duration { return max(time.Second, 5*s.timeout) }

// Subscribe implements httpbreaker.Store. The first call subscribes to the
// Store's channel; every call delivers to f the openings and isolations in
// force before it returns (one SCAN of the open keys: a cost at start-up,
// none on the request path).
func (s *Store) Subscribe(f func(httpbreaker.FleetEvent)) (unsubscribe func()) {
	sub := &s.sub
	sub.mu.Lock()
	if sub.closed {
		sub.mu.Unlock()
		return func() {}
	}
	if sub.subs == nil {
		sub.subs = make(map[int]func(httpbreaker.FleetEvent))
	}
	id := sub.next
	sub.next++
	sub.subs[id] = f
	start := !sub.started
	if start {
		sub.started = true
		sub.renewal, sub.stop, sub.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	}
	sub.mu.Unlock()
	if start {
		go sub.keep(sub.connect())
	}
	sub.catchUp(f)
	return func() {
		sub.mu.Lock()
		delete(sub.subs, id)
		sub.mu.Unlock()
	}
}

// Close stops the subscription and waits for it. It does not close the
// Redis client, which the caller owns; close the Transports first.
func (s *Store) Close() error {
	sub := &s.sub
	sub.mu.Lock()
	started, already := sub.started, sub.closed
	sub.closed = true
	sub.mu.Unlock()
	if started && !already {
		close(sub.stop)
		<-sub.done
	}
	return nil
}

// renew asks the keeper for a new subscription and a catch-up.
func (sub *subscription) renew() {
	sub.mu.Lock()
	ch := sub.renewal
	sub.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// keep owns the Redis subscription until Close: it renews it when asked,
// when it failed, and when its listener found it deaf.
func (sub *subscription) keep(l *listener) {
	defer close(sub.done)
	ticker := time.NewTicker(keeperTick)
	defer ticker.Stop()
	lastTry := time.Now()
	// reloadUntil: after a deaf subscription, a Cluster's topology is in
	// doubt for a while (a failover takes the node timeout and an election):
	// its slot map is reloaded each tick until then, so that commands, not
	// only the subscription, follow the promotion as soon as it happens.
	var reloadUntil time.Time
	renew := func() {
		if l != nil && l.deaf.Load() {
			reloadUntil = time.Now().Add(suspectTopology)
		}
		l.stop()
		lastTry = time.Now()
		if l = sub.connect(); l != nil {
			sub.catchUp(nil)
		}
	}
	due := func() bool { return time.Since(lastTry) >= sub.store.retryEvery }
	lastCheck := time.Now()
	for {
		select {
		case <-sub.stop:
			l.stop()
			return
		case <-sub.renewal:
			renew()
		case <-ticker.C:
			sub.mu.Lock()
			behind := sub.behind
			sub.mu.Unlock()
			sub.store.mu.Lock()
			troubled := sub.store.troubled
			sub.store.mu.Unlock()
			if troubled || time.Now().Before(reloadUntil) {
				sub.store.reloadSlots() // follow a failover as soon as the Cluster shows it
			}
			switch {
			case (l == nil || l.deaf.Load()) && due():
				renew()
			case behind && due():
				lastTry = time.Now()
				sub.catchUp(nil)
			case time.Since(lastCheck) >= sub.store.isolationCheck():
				lastCheck = time.Now()
				sub.recheckIsolations()
			}
		}
	}
}

// listener reads one Redis subscription.
type listener struct {
	ps     *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{}
	// deaf is set when the subscription broke or a PING went unanswered.
	deaf atomic.Bool
}

// stop closes the subscription and waits for its listener; l may be nil.
func (l *listener) stop() {
	if l != nil {
		l.cancel()
		_ = l.ps.Close()
		<-l.done
	}
}

// connect subscribes to the channel and starts listening; it returns nil
// if Redis did not confirm the subscription in time.
func (sub *subscription) connect() *listener {
	s := sub.store
	ctx, cancel := context.WithTimeout(context.Background(), s.catchUpTimeout())
	defer cancel()
	ps := sub.subscriber().Subscribe(ctx, s.channel())
	if _, err := ps.ReceiveTimeout(ctx, s.catchUpTimeout()); err != nil {
		_ = ps.Close()
		s.reloadSlots()
		return nil
	}
	lctx, lcancel := context.WithCancel(context.Background())
	l := &listener{ps: ps, cancel: lcancel, done: make(chan struct{})}
	go sub.listen(lctx, l)
	return l
}

// subscriber is the client to subscribe through. A PUBLISH on a Redis
// Cluster reaches every node, so on a Cluster any node that answers will
// do, the one used last only if no other answers: the subscription then
// follows a failover at once instead of waiting for the slot map, whose
// reload may itself wait on a frozen node.
func (sub *subscription) subscriber() interface {
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
} {
	s := sub.store
	cluster, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return s.client
	}
	var mu sync.Mutex
	var nodes []*redis.Client
	_ = cluster.ForEachShard(context.Background(), func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		nodes = append(nodes, c)
		mu.Unlock()
		return nil
	})
	answered := make(chan *redis.Client, len(nodes))
	for _, c := range nodes {
		go func() { // a frozen node holds its PING past any deadline: nobody waits for it
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			if c.Ping(ctx).Err() == nil {
				answered <- c
			}
		}()
	}
	var fallback *redis.Client
	timeout := time.After(s.timeout)
	for range nodes {
		select {
		case c := <-answered:
			if c.Options().Addr != sub.lastNode {
				sub.lastNode = c.Options().Addr
				return c
			}
			fallback = c
		case <-timeout:
			if fallback != nil {
				return fallback
			}
			return s.client
		}
	}
	if fallback != nil {
		return fallback
	}
	return s.client
}

// listen delivers the subscription's messages until it is stopped or goes
// deaf. After quietWait without a message it PINGs; no answer within
// another quietWait, or a broken connection, makes it deaf: the keeper
// renews it. A subscription confirmation means go-redis reconnected by
// itself: messages may have been lost, so it asks for a catch-up.
func (sub *subscription) listen(ctx context.Context, l *listener) {
	defer close(l.done)
	quiet := sub.store.quietWait()
	pinged := false
	for {
		item, err := l.ps.ReceiveTimeout(ctx, quiet)
		if ctx.Err() != nil {
			return // stopped
		}
		var netErr net.Error
		switch {
		case err != nil && errors.As(err, &netErr) && netErr.Timeout() && !pinged:
			pinged = true
			_ = l.ps.Ping(ctx, "httpbreaker")
			continue
		case err != nil:
			l.deaf.Store(true)
			sub.store.reloadSlots()
			return
		}
		pinged = false
		switch item := item.(type) {
		case *redis.Subscription:
			sub.mu.Lock()
			sub.behind = true
			sub.mu.Unlock()
		case *redis.Message:
			host, open, o, ok := parseMessage(item.Payload, sub.store.now)
			if !ok {
				continue
			}
			sub.delivery.Lock()
			sub.note(host, open, o.isolated)
			sub.deliver(nil, httpbreaker.FleetEvent{Host: host, Open: open, Until: o.until(sub.store.now)})
			sub.delivery.Unlock()
		}
	}
}
