package httpbreaker

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"
)

// registry holds one breaker per key: at most max of them besides the
// isolated ones. Looking up a tracked key is one atomic load and one lookup
// in a plain, never-mutated map: no lock, no allocation, about twice as
// fast as sync.Map's interface-keyed trie.
//
// New keys go to a small dirty map under mu. Once lookups have missed the
// read map half as many times as it holds keys, read and dirty are merged
// into a new read map: a clone of read (its table copied as is, no
// rehashing), minus the forgotten, plus dirty — about two entries copied
// per miss, amortised, and memory within twice one map's worth.
//
// At capacity, a new key makes room by forgetting a batch of max/64 hosts
// (at least one): the older half of a random sample twice that size
// (found by a quickselect on ages read once), closed hosts first, open and
// half-open ones only when no closed one is left, and never a host whose
// calls hold concurrency slots. A forgotten breaker is marked, never
// deleted from a published map: it stays there, skipped by every lookup,
// until the next merge, which comes at the latest once forgotten breakers
// make half the read map. So admitting a new host at the bound costs O(1)
// amortised, whatever max is (BenchmarkNewHostAtTheBound).
//
// Isolated hosts are never forgotten and do not count against max; their
// flag changes under mu, which eviction decides under.
type registry struct {
	read atomic.Pointer[map[string]*breaker] // published maps are read-only

	// tick counts the keys ever added; a breaker's lastUsed is the tick of
	// its latest request.
	tick atomic.Uint32

	mu sync.Mutex
	// dirty holds the keys added since read was published; requires mu.
	dirty map[string]*breaker
	// misses counts lookups read could not answer since it was published;
	// requires mu.
	misses int
	// evictable counts the tracked breakers that are not isolated: the ones
	// max bounds. Requires mu.
	evictable int
	// forgotten lists the forgotten breakers still in read; requires mu.
	forgotten []*breaker
	// max bounds evictable; 0 means no bound.
	max int
	// slots is set when the policy caps calls in flight: busy hosts are
	// then never forgotten.
	slots bool
	// picked, for tests only, runs between picking victims and forgetting
	// them: where a racing call changes a victim's state.
	picked func(victims []*breaker)
}

// evictionSample is how many hosts eviction looks at for each one it
// forgets, at least.
const evictionSample = 64

// peek returns the breaker of key if the read map has it: never a lock, so
// a miss says nothing.
func (r *registry) peek(key string) *breaker {
	if b := r.readMap()[key]; b != nil && !b.forgotten.Load() {
		return b
	}
	return nil
}

// lookup returns the breaker of key, or nil if key is not tracked.
func (r *registry) lookup(key string) *breaker {
	if b := r.peek(key); b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missed(key)
}

// touch records that a request used b, for eviction's recency order. It
// writes only when the tick has moved since b's last use.
func (r *registry) touch(b *breaker) {
	if now := r.tick.Load(); b.lastUsed.Load() != now {
		b.lastUsed.Store(now)
	}
}

// obtain returns the breaker of key, tracking it, closed, on first use. It
// returns nil when the bound leaves no room: every host eviction could
// forget has calls in flight.
func (r *registry) obtain(key string, s *shared) *breaker {
	if b := r.peek(key); b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.missed(key); b != nil {
		return b
	}
	if !r.makeRoom() {
		return nil
	}
	return r.track(key, s)
}

// makeRoom forgets hosts until one more fits under max, and reports whether
// it could. The bound holds at every instant: a victim whose state changed
// since it was picked is picked again, a few times, rather than added past.
// Requires r.mu held.
func (r *registry) makeRoom() bool {
	for attempt := 0; r.max > 0 && r.evictable >= r.max; attempt++ {
		forgot, candidates := r.evict()
		if candidates == 0 || forgot == 0 && attempt >= maxEvictionAttempts {
			return false
		}
	}
	return true
}

// maxEvictionAttempts bounds how often eviction picks again when every
// victim it picked changed state first: calls racing it cannot keep a new
// host waiting long.
const maxEvictionAttempts = 4

// track adds a new, closed breaker for key, not yet counted against max
// if it is to be isolated. Requires r.mu held.
func (r *registry) track(key string, s *shared) *breaker {
	if r.dirty == nil {
		r.dirty = make(map[string]*breaker)
	}
	key = strings.Clone(key) // don't pin the request's URL string
	b := newHost(key, s)
	b.lastUsed.Store(r.tick.Add(1))
	r.dirty[key] = b
	r.evictable++
	return b
}

// isolate opens key's circuit until cleared, tracking key if need be, and
// returns its breaker. Isolated hosts do not count against max, so it never
// evicts. The flag is set under r.mu, so eviction can never forget the host
// between its tracking and its isolation.
func (r *registry) isolate(key string, s *shared) *breaker {
	r.mu.Lock()
	b := r.missed(key)
	if b == nil {
		b = r.track(key, s)
	}
	if !b.isolate(s) {
		r.evictable--
	}
	r.mu.Unlock()
	b.flush(s)
	return b
}

// clear closes b's circuit and ends its isolation, if any. With fleet set,
// only a circuit that is not closed changes (the fleet's closing).
func (r *registry) clear(b *breaker, s *shared, fleet bool) {
	if !fleet {
		b.clearRules(s) // ClearState forgets what the rules learned too
	}
	r.mu.Lock()
	if b.clear(s, fleet) && !b.forgotten.Load() {
		r.evictable++
	}
	r.mu.Unlock()
	b.flush(s)
}

// all returns every tracked breaker.
func (r *registry) all() []*breaker {
	r.mu.Lock()
	defer r.mu.Unlock()
	read := r.readMap()
	list := make([]*breaker, 0, len(read)+len(r.dirty))
	for _, b := range read {
		if !b.forgotten.Load() {
			list = append(list, b)
		}
	}
	for _, b := range r.dirty {
		list = append(list, b)
	}
	return list
}

func (r *registry) readMap() map[string]*breaker {
	if m := r.read.Load(); m != nil {
		return *m
	}
	return nil
}

// missed answers a lookup the read map could not, and merges dirty into a
// new read map when the misses have paid for it. Requires r.mu held.
func (r *registry) missed(key string) *breaker {
	read := r.readMap()
	if b := read[key]; b != nil && !b.forgotten.Load() { // published meanwhile
		return b
	}
	b := r.dirty[key]
	r.misses++
	if len(r.dirty) > 0 && r.misses > len(read)/2 {
		r.publish()
	}
	return b
}

// publish merges dirty into a new read map, leaving out forgotten
// breakers. Cloning read copies its table as it is, with no rehashing and
// without touching a breaker. Requires r.mu held.
func (r *registry) publish() {
	merged := maps.Clone(r.readMap())
	if merged == nil {
		merged = make(map[string]*breaker, len(r.dirty))
	}
	for _, b := range r.forgotten {
		delete(merged, b.host)
	}
	maps.Copy(merged, r.dirty)
	r.read.Store(&merged)
	r.dirty, r.misses, r.forgotten = nil, 0, r.forgotten[:0]
}

// evict forgets a batch of hosts to make room, and returns how many it
// forgot and how many it could have picked from. Requires r.mu held.
func (r *registry) evict() (forgot, candidates int) {
	victims, candidates, closed := r.victims(max(1, r.max/64))
	if r.picked != nil {
		r.picked(victims)
	}
	for _, b := range victims {
		var keep func() bool
		if r.slots {
			keep = b.busy // a call took a slot as it was picked
		}
		if !b.forget(closed, keep) {
			continue // its state changed, or a call took a slot, since it was picked
		}
		forgot++
		r.evictable--
		if r.dirty[b.host] == b {
			delete(r.dirty, b.host)
		} else {
			r.forgotten = append(r.forgotten, b)
		}
	}
	if len(r.forgotten) > len(r.readMap())/2 {
		r.publish()
	}
	return forgot, candidates
}

// victims picks up to n hosts to forget: the least recently used closed
// hosts of a sample; if the sample holds no closed host, those of a full
// scan; if there are none, the least recently used open or half-open
// hosts. Isolated hosts and hosts with calls holding concurrency slots are
// never picked. candidates is the size of the pool they came from, closed
// which pool that was. Requires r.mu held.
func (r *registry) victims(n int) (victims []*breaker, candidates int, closed bool) {
	var closedOnes, other []aged
	seen, sample := 0, max(evictionSample, 2*n)
	tick := r.tick.Load()
	scan := func(m map[string]*breaker, full bool) {
		for _, b := range m { // map order is random: a fair sample
			if !full && seen >= sample {
				return
			}
			if b.forgotten.Load() || b.isolated || r.slots && b.busy() {
				continue
			}
			seen++
			a := aged{b: b, age: tick - b.lastUsed.Load()} // wraps safely
			if b.load().state() == StateClosed {
				closedOnes = append(closedOnes, a)
			} else {
				other = append(other, a)
			}
		}
	}
	scan(r.dirty, false)
	scan(r.readMap(), false)
	if len(closedOnes) == 0 && seen >= sample { // the sample was not everything
		seen, other = 0, other[:0]
		scan(r.dirty, true)
		scan(r.readMap(), true)
	}
	pool, closed := closedOnes, true
	if len(pool) == 0 {
		pool, closed = other, false
	}
	oldest(pool, n)
	victims = make([]*breaker, min(n, len(pool)))
	for i := range victims {
		victims[i] = pool[i].b
	}
	return victims, len(pool), closed
}

// aged is a breaker with its age in ticks, read once: sorting on it
// touches no breaker.
type aged struct {
	b   *breaker
	age uint32
}

// oldest moves the n oldest of pool to its front, in no particular order:
// a quickselect, linear on average, where a full sort was n log n.
func oldest(pool []aged, n int) {
	lo, hi := 0, len(pool)-1
	for lo < hi && n > lo && n <= hi {
		pivot := pool[lo+(hi-lo)/2].age
		i, j := lo, hi
		for i <= j { // Hoare: older ones to the left
			for pool[i].age > pivot {
				i++
			}
			for pool[j].age < pivot {
				j--
			}
			if i <= j {
				pool[i], pool[j] = pool[j], pool[i]
				i++
				j--
			}
		}
		if n <= j {
			hi = j
		} else if n >= i {
			lo = i
		} else {
			return
		}
	}
}

// forget marks the breaker forgotten, unless it is isolated, or, picked as
// a closed host, has opened since, or keep, asked after the flag is set,
// says to keep it (a call on the host may take a resource the flag guards:
// whichever of the two looks second sees the other). From here on its
// transitions are silent. Requires the registry's mu held.
func (b *breaker) forget(wasClosed bool, keep func() bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isolated || wasClosed && b.load().state() != StateClosed {
		return false
	}
	b.forgotten.Store(true)
	if keep != nil && keep() {
		b.forgotten.Store(false) // under both locks: no transition saw it
		return false
	}
	return true
}
