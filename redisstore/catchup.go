package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpbreaker/httpbreaker"
)

// The catch-up: what subscribers are told after a gap, and what keeps an
// isolation alive when Redis loses its keys.

// note records what the subscribers are told of host. Requires delivery.
func (sub *subscription) note(host string, open, isolated bool) {
	if sub.told == nil {
		sub.told = make(map[string]bool)
	}
	was, known := sub.told[host]
	if known && was {
		sub.isolated--
	}
	if !open {
		delete(sub.told, host)
		return
	}
	sub.told[host] = isolated
	if isolated {
		sub.isolated++
	}
}

// deliver hands ev to f, or to every subscriber if f is nil. Requires
// delivery.
func (sub *subscription) deliver(f func(httpbreaker.FleetEvent), ev httpbreaker.FleetEvent) {
	if f != nil {
		f(ev)
		return
	}
	sub.mu.Lock()
	subs := make([]func(httpbreaker.FleetEvent), 0, len(sub.subs))
	for _, g := range sub.subs {
		subs = append(subs, g)
	}
	sub.mu.Unlock()
	for _, g := range subs {
		g(ev)
	}
}

// catchUp reads the openings in force and delivers them: to f alone, a new
// subscriber, or (f nil, after a gap) to every subscriber, with what became
// of the hosts they were told were open and no longer are (see settle).
// Messages wait meanwhile, so none is delivered out of order with what the
// scan read.
func (sub *subscription) catchUp(f func(httpbreaker.FleetEvent)) {
	sub.delivery.Lock()
	defer sub.delivery.Unlock()
	s := sub.store
	open, err := s.openings()
	if err == nil && f == nil {
		for host := range sub.told {
			if _, still := open[host]; !still {
				if err = sub.settle(host); err != nil {
					break
				}
			}
		}
	}
	sub.mu.Lock()
	sub.behind = err != nil || sub.behind && f != nil // a new subscriber's catch-up is not everyone's
	sub.mu.Unlock()
	if err != nil {
		return
	}
	for host, o := range open {
		sub.note(host, true, o.isolated)
		sub.deliver(f, httpbreaker.FleetEvent{Host: host, Open: true, Until: o.until(s.now)})
	}
}

// settle decides what became of host, which the subscribers were told is
// open and whose open key is gone. An isolation ends only by a clear: if
// the clear's record is there, they hear the closing; if not, Redis lost
// the key, and the isolation is put back (and announced, for members that
// joined since). A plain opening ends by itself anyway: they hear the
// closing, whether it was cleared or lost (losing one early costs a few
// calls to the host). Requires delivery.
func (sub *subscription) settle(host string) error {
	if sub.told[host] {
		cleared, err := sub.store.reassert(host)
		if err != nil || !cleared {
			return err
		}
	}
	sub.note(host, false, false)
	sub.deliver(nil, httpbreaker.FleetEvent{Host: host})
	return nil
}

// recheckIsolations asks Redis whether each isolation the subscribers hold
// is still there, puts back the ones it lost and delivers the closing of
// the ones cleared: so an isolation survives a FLUSHALL or an eviction
// even without a gap in the subscription, and members that join later see
// it. The keeper calls it every isolationCheck while isolations are held.
func (sub *subscription) recheckIsolations() {
	sub.delivery.Lock()
	defer sub.delivery.Unlock()
	if sub.isolated == 0 {
		return
	}
	for host, isolated := range sub.told {
		if !isolated {
			continue
		}
		cleared, err := sub.store.reassert(host)
		if err != nil {
			return // Redis is in trouble: the next check, or the catch-up after it, tries again
		}
		if cleared {
			sub.note(host, false, false)
			sub.deliver(nil, httpbreaker.FleetEvent{Host: host})
		}
	}
}

// reassertScript puts an isolation back unless it was cleared: KEYS are the
// open key and the clear's record; it returns 0 if cleared, 1 if it put
// the isolation back (and announced it), 2 if it was there.
var reassertScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local v = redis.call('GET', KEYS[1])
if v == 'i' or v == '0' then return 2 end
redis.call('SET', KEYS[1], 'i', 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`)

// reassert puts host's isolation back in Redis unless it was cleared, and
// reports whether it was.
func (s *Store) reassert(host string) (cleared bool, err error) {
	keys := []string{s.key(host, "open"), s.key(host, "cleared")}
	msg := openMessage(host, opening{isolated: true})
	var n int64
	err = s.run(context.Background(), func(ctx context.Context) error {
		var err error
		n, err = reassertScript.Run(ctx, s.client, keys, s.isolationTTL.Milliseconds(), s.channel(), msg).Int64()
		return err
	})
	return err == nil && n == 0, err
}

// openings scans the open keys: every host whose circuit is open or
// isolated for the fleet, with what its opening has left by Redis's clock.
// On a Redis Cluster it scans every master.
func (s *Store) openings() (map[string]opening, error) {
	found := make(map[string]opening)
	var mu sync.Mutex
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var keys []string
		iter := c.Scan(ctx, 0, globEscape(s.prefix)+":{*}:open", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
		for len(keys) > 0 {
			batch := keys[:min(len(keys), 1000)]
			keys = keys[len(batch):]
			values := make([]*redis.StringCmd, len(batch))
			ttls := make([]*redis.DurationCmd, len(batch))
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range batch {
					values[i], ttls[i] = p.Get(ctx, k), p.PTTL(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			mu.Lock()
			for i, k := range batch {
				v, err := values[i].Result()
				host, ok := s.hostOf(k, "open")
				if err != nil || !ok {
					continue
				}
				if o, ok := parseOpening(v, ttls[i].Val(), s.now); ok {
					found[host] = o
				}
			}
			mu.Unlock()
		}
		return nil
	}
	err := s.runFor(context.Background(), s.catchUpTimeout(), func(ctx context.Context) error {
		if cluster, ok := s.client.(*redis.ClusterClient); ok {
			return cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
		}
		return scan(ctx, s.client)
	})
	return found, err
}

// isolationCheck is how often the keeper rechecks held isolations.
func (s *Store) isolationCheck() time.Duration {
	if s.recheckEvery > 0 {
		return s.recheckEvery
	}
	return 10 * s.quietWait()
}
