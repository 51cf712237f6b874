package httpbreaker

// Eviction: how the registry makes room for a new host at WithMaxHosts,
// and never forgets one it must keep (isolated, or with calls holding
// concurrency slots).

// evictionSample is how many hosts eviction looks at for each one it
// forgets, at least.
const evictionSample = 64

// makeRoom forgets hosts until one more fits under max, and reports whether
// it could. The bound holds at every instant: a victim whose state changed
// since it was picked is picked again, a few times, rather than added past.
// Requires r.mu held.
func (r *registry) makeRoom() bool { return r.fit(1) }

// fit forgets hosts until room more fit under max, and reports whether it
// could: makeRoom's, for a new host, and ClearState's, whose isolated host
// counts against the bound again (room 0). Requires r.mu held.
func (r *registry) fit(room int) bool {
	for attempt := 0; r.max > 0 && r.evictable+room > r.max; attempt++ {
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
