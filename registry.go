package httpbreaker

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// registry holds one breaker per key, at most max of them. Looking up a
// tracked key is one atomic load and one lookup in a plain, never-mutated
// map: no lock, no allocation, about twice as fast as sync.Map's
// interface-keyed trie.
//
// New keys go to a small dirty map under mu. Once lookups have missed the
// read map a quarter as many times as it holds keys, read and dirty are
// merged into a new read map: the copy costs at most four inserts per miss,
// amortised, and memory stays near one map's worth.
//
// At capacity, a new key makes room by forgetting a batch of max/64 hosts
// (at least one), the least recently used among a sample: closed hosts
// first, open and half-open ones only when no closed one is left, isolated
// ones never. Forgetting publishes a new read map, so a batch amortises the
// copy.
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
	// max bounds the keys tracked at once; 0 means no bound.
	max int
}

// evictionSample is how many hosts eviction looks at for each one it
// forgets, at least.
const evictionSample = 64

// peek returns the breaker of key if the read map has it: never a lock, so
// a miss says nothing.
func (r *registry) peek(key string) *breaker { return r.readMap()[key] }

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

// obtain returns the breaker of key, tracking it, closed, on first use. At
// capacity with nothing it may forget — every host isolated — it returns
// nil.
func (r *registry) obtain(key string, s *settings) *breaker {
	if b := r.peek(key); b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.missed(key); b != nil {
		return b
	}
	if r.max > 0 && r.size() >= r.max && !r.evict() {
		return nil
	}
	if r.dirty == nil {
		r.dirty = make(map[string]*breaker)
	}
	key = strings.Clone(key) // don't pin the request's URL string
	b := newBreaker(key, s)
	b.lastUsed.Store(r.tick.Add(1))
	r.dirty[key] = b
	return b
}

// all returns every tracked breaker.
func (r *registry) all() []*breaker {
	r.mu.Lock()
	defer r.mu.Unlock()
	read := r.readMap()
	list := make([]*breaker, 0, len(read)+len(r.dirty))
	for _, b := range read {
		list = append(list, b)
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

// size is the number of tracked keys; read and dirty never share one.
// Requires r.mu held.
func (r *registry) size() int { return len(r.readMap()) + len(r.dirty) }

// missed answers a lookup the read map could not, and merges dirty into a
// new read map when the misses have paid for it. Requires r.mu held.
func (r *registry) missed(key string) *breaker {
	read := r.readMap()
	if b := read[key]; b != nil { // published meanwhile
		return b
	}
	b := r.dirty[key]
	r.misses++
	if len(r.dirty) > 0 && r.misses > len(read)/4 {
		r.publish(nil)
	}
	return b
}

// publish merges dirty into a new read map, leaving out the keys of
// forget. Requires r.mu held.
func (r *registry) publish(forget map[string]bool) {
	read := r.readMap()
	merged := make(map[string]*breaker, len(read)+len(r.dirty)-len(forget))
	for k, b := range read {
		if !forget[k] {
			merged[k] = b
		}
	}
	for k, b := range r.dirty {
		if !forget[k] {
			merged[k] = b
		}
	}
	r.read.Store(&merged)
	r.dirty, r.misses = nil, 0
}

// evict forgets a batch of hosts to make room, and reports whether it
// could forget any. Requires r.mu held.
func (r *registry) evict() bool {
	victims := r.victims(max(1, r.max/64))
	if len(victims) == 0 {
		return false
	}
	forget := make(map[string]bool, len(victims))
	for _, b := range victims {
		forget[b.host] = true
	}
	r.publish(forget)
	return true
}

// victims picks up to n hosts to forget: the least recently used closed
// hosts of a sample; if the sample holds no closed host, those of a full
// scan; if there are none, the least recently used open or half-open
// hosts. Isolated hosts are never picked. Requires r.mu held.
func (r *registry) victims(n int) []*breaker {
	var closed, other []*breaker
	seen, sample := 0, max(evictionSample, 4*n)
	scan := func(m map[string]*breaker, full bool) {
		for _, b := range m { // map order is random: a fair sample
			if !full && seen >= sample {
				return
			}
			seen++
			switch st := b.load().state(); {
			case st == StateClosed:
				closed = append(closed, b)
			case !b.isolated():
				other = append(other, b)
			}
		}
	}
	scan(r.dirty, false)
	scan(r.readMap(), false)
	if len(closed) == 0 && seen >= sample { // the sample was not everything
		other = other[:0]
		scan(r.dirty, true)
		scan(r.readMap(), true)
	}
	pool := closed
	if len(pool) == 0 {
		pool = other
	}
	tick := r.tick.Load()
	age := func(b *breaker) uint32 { return tick - b.lastUsed.Load() } // wraps safely
	slices.SortFunc(pool, func(a, b *breaker) int { return cmp.Compare(age(b), age(a)) })
	return pool[:min(n, len(pool))]
}
