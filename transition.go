package httpbreaker

import (
	"context"
	"log/slog"
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
// at Warn when a circuit opens, at Info otherwise. A nil logger means
// [slog.Default] at the time of each transition.
//
//	httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(slog.Default()))
func LogStateChanges(logger *slog.Logger) func(Transition) {
	return func(ev Transition) {
		logger := logger
		if logger == nil {
			logger = slog.Default()
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

// TransitionCount is how many times circuits went From a state To another.
type TransitionCount struct {
	From, To State
	Count    uint64
}

// Transitions counts the state changes of every host since the Transport
// was made, by from and to; pairs that never happened are left out.
func (t *Transport) Transitions() []TransitionCount {
	var counts []TransitionCount
	for from := range t.s.transitions {
		for to := range t.s.transitions[from] {
			if n := t.s.transitions[from][to].Load(); n > 0 {
				counts = append(counts, TransitionCount{From: State(from), To: State(to), Count: n})
			}
		}
	}
	return counts
}
