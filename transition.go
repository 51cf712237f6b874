package httpbreaker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Transition is one change of one host's circuit, as [WithOnTransition]
// listeners hear it.
type Transition struct {
	// Host is the breaker key.
	Host string
	// From and To are the states before and after.
	From, To State
	// At is when it happened, on the Transport's clock.
	At time.Time
	// RetryAt is, for an opening, when a probe may pass; zero otherwise and
	// for an isolated host.
	RetryAt time.Time
	// Shedding marks a closed circuit that starts (true) or stops (false)
	// refusing calls for overload (Policy.Throttle, MaxConcurrent); From
	// and To are then both StateClosed, and [Transport.Transitions] does
	// not count it. It starts at the first such refusal and stops once a
	// call ends a Window (10s without one) after the last, or when the
	// state changes (the stop comes first). Only policies with Throttle or
	// MaxConcurrent produce these.
	Shedding bool
}

// Listeners combines listeners into one, called in order.
func Listeners(listeners ...func(Transition)) func(Transition) {
	return func(ev Transition) {
		for _, listen := range listeners {
			listen(ev)
		}
	}
}

// LogStateChanges returns a listener for [WithOnTransition] that logs each
// transition with the host, the states and, for an opening, the retry time:
// at Warn when a circuit opens or starts shedding load, at Info otherwise.
// A nil logger means [slog.Default] at the time of each transition.
//
//	httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(slog.Default()))
func LogStateChanges(logger *slog.Logger) func(Transition) {
	return func(ev Transition) {
		logger := logger
		if logger == nil {
			logger = slog.Default()
		}
		if ev.From == StateClosed && ev.To == StateClosed {
			level, msg := slog.LevelInfo, "httpbreaker: host stopped shedding load"
			if ev.Shedding {
				level, msg = slog.LevelWarn, "httpbreaker: host shedding load"
			}
			logger.LogAttrs(context.Background(), level, msg,
				slog.String("host", ev.Host), slog.Bool("shedding", ev.Shedding))
			return
		}
		level, msg := slog.LevelInfo, "httpbreaker: circuit "+ev.To.String()
		attrs := []slog.Attr{
			slog.String("host", ev.Host),
			slog.String("from", ev.From.String()),
			slog.String("to", ev.To.String()),
		}
		if ev.To == StateOpen {
			level = slog.LevelWarn
			if ev.RetryAt.IsZero() {
				attrs = append(attrs, slog.Bool("isolated", true))
			} else {
				attrs = append(attrs, slog.Time("retry_at", ev.RetryAt))
			}
		}
		logger.LogAttrs(context.Background(), level, msg, attrs...)
	}
}

// eventQueue is a host's news for its listeners, in the order it
// happened: the circuit's transitions and the overload rules' shedding
// starts and stops go through this one queue. It is part of the host's
// record (hostMore) and guarded by the breaker's mu, but for shedding,
// which the rules read lock-free.
type eventQueue struct {
	// lastAt is the latest instant handed out: listeners never see a
	// host's time go backwards.
	lastAt int64
	// pending are the events not yet delivered.
	pending []Transition
	// notifying is set while one goroutine delivers them.
	notifying bool
	// shedding is set while listeners were told the host sheds load and
	// not yet that it stopped.
	shedding atomic.Bool
}

// after returns now, or the latest instant handed out if that is later.
// Requires mu.
func (q *eventQueue) after(now int64) int64 { return max(now, q.lastAt) }

// changed records that the host's state changed at now. A host that was
// shedding load stops first, so listeners (if heard) hear the stop before
// the change. Requires mu.
func (q *eventQueue) changed(s *shared, host string, now int64, heard bool) {
	if heard && q.shedding.Load() {
		q.shedNews(s, host, now, false)
	}
	q.lastAt = now
}

// push queues ev for the listeners. Requires mu.
func (q *eventQueue) push(ev Transition) { q.pending = append(q.pending, ev) }

// flush delivers the transitions queued while the caller held locks that
// listeners must not run under.
func (b *breaker) flush(s *shared) {
	b.mu.Lock()
	b.unlockAndNotify(s)
}

// unlockAndNotify releases b.mu, then delivers any queued events.
// Requires b.mu held.
func (b *breaker) unlockAndNotify(s *shared) {
	pending := b.more != nil && len(b.more.events.pending) > 0 && !b.more.events.notifying
	b.mu.Unlock()
	if pending {
		b.notify(s)
	}
}

// notify delivers queued events to the listeners, outside the lock and in
// order: one goroutine at a time drains the queue, so a transition made by
// a listener (say, through ClearState) is delivered after the one that
// called it. If a listener panics, the panic goes on up and the remaining
// events wait for the next transition.
func (b *breaker) notify(s *shared) {
	b.mu.Lock()
	q := &b.more.events
	if q.notifying {
		b.mu.Unlock()
		return
	}
	q.notifying = true
	finished := false
	defer func() {
		if !finished {
			b.mu.Lock()
			q.notifying = false
			b.mu.Unlock()
		}
	}()
	for len(q.pending) > 0 {
		ev := q.pending[0]
		q.pending = q.pending[1:]
		b.mu.Unlock()
		for _, listen := range s.listeners {
			listen(ev)
		}
		b.mu.Lock()
	}
	q.pending = nil
	q.notifying = false
	finished = true
	b.mu.Unlock()
}
