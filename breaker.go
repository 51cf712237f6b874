package httpbreaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// breaker is one host's state machine: closed, open, half-open.
//
// The closed path is lock-free: admission is one atomic load of the state
// word, a success one more (plus a CAS only when there are failures to
// forget), a failure a CAS. Everything else — tripping, probes, clearing —
// happens under mu, which only this host's calls ever take.
type breaker struct {
	// state is a word: state, consecutive failures and generation.
	state atomic.Uint64
	// retryAt is, while open, the clock offset (settings.offset) at which a
	// probe may be admitted.
	retryAt atomic.Int64
	// refusal is what a refused call returns in the current open or
	// half-open episode; built once per episode, never reset to nil.
	refusal atomic.Pointer[OpenError]

	mu sync.Mutex
	// probes is the number of probes in flight while half-open; requires mu.
	probes int32
	// successes counts consecutive probe successes while half-open;
	// requires mu.
	successes int32
	// notifying is set while one goroutine delivers events; requires mu.
	notifying bool
	// events are transitions not yet delivered to listeners; requires mu.
	events []transition

	host string
}

// transition is one state change, as listeners see it.
type transition struct{ from, to State }

// ticket is what an admitted call carries to its report: the generation it
// was admitted in and whether it holds a probe slot.
type ticket struct {
	gen   uint32
	probe bool
}

// settings is what every breaker of a Transport shares.
type settings struct {
	policy    Policy // with defaults applied
	now       func() time.Time
	epoch     time.Time // offsets are measured from here
	listeners []func(host string, from, to State)
}

// offset turns an instant into the int64 a breaker stores atomically. Using
// Sub keeps the monotonic clock reading of real instants.
func (s *settings) offset(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

func (b *breaker) load() word { return word(b.state.Load()) }

func (b *breaker) cas(old, new word) bool {
	return b.state.CompareAndSwap(uint64(old), uint64(new))
}

// admit lets a call through, with its ticket, or refuses it. Only a circuit
// that is not closed reads the clock.
func (b *breaker) admit(s *settings) (ticket, *OpenError) {
	w := b.load()
	if w.state() == StateClosed {
		return ticket{gen: w.gen()}, nil
	}
	return b.admitSlow(s, w)
}

func (b *breaker) admitSlow(s *settings, w word) (ticket, *OpenError) {
	now := s.now()
	if w.state() == StateOpen && s.offset(now) < b.retryAt.Load() {
		return ticket{}, b.refusal.Load()
	}
	b.mu.Lock()
	w = b.advance(s, now)
	var tk ticket
	var refused *OpenError
	switch {
	case w.state() == StateClosed:
		tk = ticket{gen: w.gen()}
	case w.state() == StateHalfOpen && int(b.probes) < s.policy.HalfOpenMaxRequests:
		b.probes++
		tk = ticket{gen: w.gen(), probe: true}
	default:
		refused = b.refusal.Load()
	}
	b.unlockAndNotify(s)
	return tk, refused
}

// report counts the outcome of an admitted call. A result from an earlier
// generation is dropped.
func (b *breaker) report(s *settings, tk ticket, o Outcome) {
	if tk.probe {
		b.reportProbe(s, tk, o)
		return
	}
	switch o {
	case Ignore:
	case Success:
		for {
			w := b.load()
			if w.gen() != tk.gen || w.failures() == 0 || b.cas(w, w.withFailures(0)) {
				return
			}
		}
	default:
		for {
			w := b.load()
			if w.gen() != tk.gen {
				return
			}
			n := w.failures() + 1
			if n >= s.policy.FailureThreshold {
				b.trip(s, tk.gen)
				return
			}
			if b.cas(w, w.withFailures(n)) {
				return
			}
		}
	}
}

// trip counts the failure that reaches the threshold and opens the circuit,
// unless the count changed or the generation moved on meanwhile.
func (b *breaker) trip(s *settings, gen uint32) {
	now := s.now()
	b.mu.Lock()
	for {
		w := b.load()
		if w.gen() != gen {
			break
		}
		if n := w.failures() + 1; n < s.policy.FailureThreshold {
			if b.cas(w, w.withFailures(n)) {
				break
			}
			continue
		}
		if b.transition(s, w, StateOpen, now) {
			break
		}
	}
	b.unlockAndNotify(s)
}

func (b *breaker) reportProbe(s *settings, tk ticket, o Outcome) {
	var now time.Time
	if o != Success && o != Ignore {
		now = s.now()
	}
	b.mu.Lock()
	if w := b.load(); w.gen() == tk.gen {
		b.probes--
		switch o {
		case Ignore:
		case Success:
			b.successes++
			if int(b.successes) >= s.policy.SuccessThreshold {
				b.transition(s, w, StateClosed, now)
			}
		default:
			b.transition(s, w, StateOpen, now)
		}
	}
	b.unlockAndNotify(s)
}

// current returns the state, turning an open circuit half-open if its time
// has come (so listeners hear of it).
func (b *breaker) current(s *settings) State {
	w := b.load()
	if w.state() != StateOpen {
		return w.state()
	}
	now := s.now()
	if s.offset(now) < b.retryAt.Load() {
		return StateOpen
	}
	b.mu.Lock()
	w = b.advance(s, now)
	b.unlockAndNotify(s)
	return w.state()
}

// clear closes the circuit and forgets its counts.
func (b *breaker) clear(s *settings) {
	b.mu.Lock()
	for !b.transition(s, b.load(), StateClosed, time.Time{}) {
	}
	b.unlockAndNotify(s)
}

// advance turns an open circuit half-open once its retry time has come and
// returns the current word. Requires b.mu held.
func (b *breaker) advance(s *settings, now time.Time) word {
	w := b.load()
	if w.state() == StateOpen && s.offset(now) >= b.retryAt.Load() {
		b.transition(s, w, StateHalfOpen, now)
		w = b.load()
	}
	return w
}

// transition moves the breaker from the word w to state to, in a new
// generation, and queues the change for listeners. It reports false, and
// changes nothing that matters, if the word is no longer w (a lock-free
// closed-path update came first). Requires b.mu held.
func (b *breaker) transition(s *settings, w word, to State, now time.Time) bool {
	switch to {
	case StateOpen:
		retry := now.Add(s.policy.ResetTimeout)
		b.retryAt.Store(s.offset(retry))
		b.refusal.Store(&OpenError{Host: b.host, State: StateOpen, RetryAt: retry})
	case StateHalfOpen:
		b.refusal.Store(&OpenError{Host: b.host, State: StateHalfOpen, RetryAt: now})
	}
	if !b.cas(w, packWord(to, 0, w.gen()+1)) {
		return false
	}
	b.probes, b.successes = 0, 0
	if from := w.state(); from != to && len(s.listeners) > 0 {
		b.events = append(b.events, transition{from, to})
	}
	return true
}

// unlockAndNotify releases b.mu, then delivers any queued transitions.
// Requires b.mu held.
func (b *breaker) unlockAndNotify(s *settings) {
	pending := len(b.events) > 0 && !b.notifying
	b.mu.Unlock()
	if pending {
		b.notify(s)
	}
}

// notify delivers queued transitions to the listeners, outside the lock and
// in order: one goroutine at a time drains the queue, so a transition made
// by a listener (say, through ClearState) is delivered after the one that
// called it. If a listener panics, the panic goes on up and the remaining
// events wait for the next transition.
func (b *breaker) notify(s *settings) {
	b.mu.Lock()
	if b.notifying {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	finished := false
	defer func() {
		if !finished {
			b.mu.Lock()
			b.notifying = false
			b.mu.Unlock()
		}
	}()
	for len(b.events) > 0 {
		ev := b.events[0]
		b.events = b.events[1:]
		b.mu.Unlock()
		for _, listen := range s.listeners {
			listen(b.host, ev.from, ev.to)
		}
		b.mu.Lock()
	}
	b.events = nil
	b.notifying = false
	finished = true
	b.mu.Unlock()
}
