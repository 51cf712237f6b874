package httpbreaker

import (
	"sync"
	"sync/atomic"
)

// adaptiveLimit is a host's adaptive concurrency limit
// (Policy.AdaptiveConcurrency): how many calls the concurrency cap lets
// into flight, moved by the latency of the host's answers from admission
// to response headers. It starts at the ceiling (MaxConcurrent) and works
// in windows of at least minSamples timed answers spanning at least the
// host's unloaded latency, about one round trip (the loop cannot act
// faster than the host answers). Every call is timed until the first
// window closes, then a share sampleShare of them: two clock reads per
// call would cost more than the rest of the rule.
//
//   - The first window spans at least twice its quickest answer. It sets
//     the unloaded latency, noLoad, to its mean, and the limit to twice
//     the calls in flight it saw — unless a queue built within it (its
//     mean above tolerance × its first earlySamples answers', as when a
//     pool starts at once): then noLoad is that early mean and the limit
//     its throughput times noLoad (Little's law), with headroom.
//   - A window queues when its mean exceeds tolerance × noLoad, or when the
//     host answered 429 or 503 (it sheds load: it is past its knee).
//   - The limit moves only when it binds (a window saw calls in flight of
//     at least binding × the limit in force, a whole number, each answer
//     counting its own call even when its slot went back with a body-less
//     answer), or on a 429 or 503: a latency rise
//     while the calls in flight stay under it is noise, or a queue this
//     limit did not build.
//   - A binding window that did not queue grows the limit by a twentieth
//     (at least 1) and lowers noLoad to its mean if lower.
//   - A binding window that queued sets the limit to what the host serves
//     without a queue, its throughput over the window times noLoad
//     (Little's law), with headroom; at most 0.9 × the limit after a 429
//     or 503. However long the backlog, one step lands on the knee.
//   - Answers to calls admitted before the limit last moved say nothing of
//     the new limit and are left out.
//   - When stuckAfter queueing windows in a row fail to lower the latency,
//     the cuts are not what moves it (the host got slower, or other
//     clients fill it): the latency becomes the new noLoad and the limit
//     goes back to where the run of cuts began.
//
// Under overload the limit thus saws between the knee and tolerance times
// it. Caller cancellations, transport errors and refusals give no sample;
// probes do. At the limit, Sheddable calls are refused first (they may use
// the limit less a quarter), then Critical, and CriticalPlus last (they
// may go a quarter over it, up to the ceiling).
type adaptiveLimit struct {
	// limit is the limit now, read by every admission.
	limit atomic.Int64
	// learning is set until the first window closes: every call is timed.
	learning atomic.Bool
	// answers counts every answer, timed or not: the host's throughput.
	answers atomic.Int64

	mu       sync.Mutex
	estimate float64 // the limit, unrounded
	noLoad   int64   // the unloaded latency; 0 until the first window
	changed  int64   // when the limit last moved
	window   latencyWindow
	// The run of queueing windows whose cuts did not lower the latency.
	stuck       int
	lastMean    int64   // the mean of the latest queueing window
	beforeStuck float64 // the limit when the run began
}

// latencyWindow gathers the answers of one window.
type latencyWindow struct {
	opened     int64 // when its first sample came
	samples    int
	sum        int64 // of the latencies
	peak       int64 // the most calls in flight seen at a sample
	low        int64 // the lowest latency sampled
	early      int64 // the sum of the first earlySamples latencies
	overloaded bool  // a 429 or 503 came
	answered   int64 // the answers counted when it opened
}

// The adaptive limit's constants.
const (
	minSamples   = 10
	earlySamples = minSamples / 2
	sampleShare  = 0.25
	tolerance    = 1.15
	growth       = 1.0 / 20
	stuckAfter   = 3
	headroom     = 1.05
	binding      = 0.9
)

func newAdaptiveLimit(s *shared) *adaptiveLimit {
	l := new(adaptiveLimit)
	l.reset(s)
	return l
}

// admits returns how many calls in flight a call of criticality c may
// join: the limit for Critical, a quarter less for Sheddable, a quarter
// more (up to the ceiling) for CriticalPlus. It draws whether to time the
// call, and if so returns tk stamped with the admission time: a share
// sampleShare of the calls is enough to measure latency, and reading the
// clock twice per call would cost more than the rest of the rule. A call
// whose admission was already read (SlowCall, a probe) is timed anyway.
// (The ticket goes in and out by value: its address would keep it off
// registers on every call's path.)
func (l *adaptiveLimit) admits(s *shared, c Criticality, tk ticket) (int, ticket) {
	if tk.start == 0 && (l.learning.Load() || s.random() < sampleShare) {
		tk.start = max(s.clock(), 1) // 0 means not timed
	}
	limit := int(l.limit.Load())
	switch c {
	case Sheddable:
		return max(1, limit-max(1, limit/4)), tk
	case CriticalPlus:
		return min(s.policy.MaxConcurrent, limit+max(1, limit/4)), tk
	}
	return limit, tk
}

// learn counts a call's answer, status (0 for none), and if the call was
// timed from start (0 for not) to at, takes its sample, with inFlight
// calls in flight as it came, this one included.
// Only an answer (response headers) teaches the limit anything.
func (l *adaptiveLimit) learn(s *shared, start, at int64, status int, inFlight int64) {
	if status == 0 {
		return // no answer: the caller gave up, or the transport failed
	}
	answers := l.answers.Add(1)
	if start == 0 {
		return // not timed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if start < l.changed {
		return // admitted under an older limit
	}
	w := &l.window
	if w.samples == 0 {
		w.opened, w.answered = at, answers
	}
	w.samples++
	latency := max(at-start, 0)
	w.sum += latency
	if w.samples == 1 || latency < w.low {
		w.low = latency
	}
	if w.samples <= earlySamples {
		w.early += latency
	}
	w.peak = max(w.peak, inFlight, 1)
	w.overloaded = w.overloaded || status == 429 || status == 503
	span := l.noLoad
	if span == 0 { // the first window spans twice its quickest answer: a queue building from the start shows
		span = 2 * w.low
	}
	if w.samples >= minSamples && at-w.opened >= span {
		l.close(s, at, answers)
	}
}

// close ends the window at now, when answers have been counted, and moves
// the limit.
func (l *adaptiveLimit) close(s *shared, now, answers int64) {
	w := l.window
	l.window = latencyWindow{}
	mean := w.sum / int64(w.samples)
	if l.noLoad == 0 { // the first window: the limit leaves the ceiling
		l.learning.Store(false)
		if early := w.early / earlySamples; float64(mean) > tolerance*float64(max(early, 1)) {
			// A queue built as the window went on: the first answers,
			// before it (a pool that starts at once), came in the unloaded
			// latency, the later ones waited. The host serves its
			// throughput over the window at that latency without a queue
			// (Little's law). A slow first answer (a connection's setup)
			// is no queue: it raises the early mean instead.
			l.noLoad = max(early, 1)
			throughput := float64(answers-w.answered) / float64(max(now-w.opened, 1))
			l.set(s, now, min(l.estimate, float64(w.peak)*2, throughput*float64(l.noLoad)*headroom))
			return
		}
		l.noLoad = max(mean, 1)
		l.set(s, now, min(l.estimate, float64(w.peak)*2))
		return
	}
	if !w.overloaded && float64(mean) <= tolerance*float64(l.noLoad) {
		l.noLoad = min(l.noLoad, max(mean, 1))
		l.stuck = 0
		if l.binds(w) {
			l.set(s, now, l.estimate+max(1, l.estimate*growth))
		}
		return
	}
	if !w.overloaded && !l.binds(w) {
		return // calls in flight well under the limit: not a queue of this limit's making
	}
	if l.stuck == 0 || mean < l.lastMean*19/20 {
		l.stuck, l.beforeStuck = 1, l.estimate
	} else if l.stuck++; l.stuck > stuckAfter && !w.overloaded {
		l.noLoad, l.stuck = mean, 0 // the host's latency, not a queue
		l.set(s, now, l.beforeStuck)
		return
	}
	l.lastMean = mean
	// What the host sustains without a queue: its throughput over the
	// window times its unloaded latency (Little's law).
	target := float64(answers-w.answered) * float64(l.noLoad) / float64(max(now-w.opened, 1)) * headroom
	target = min(target, l.estimate)
	if w.overloaded {
		target = min(target, l.estimate*0.9)
	}
	l.set(s, now, target)
}

// binds reports whether the window used the limit: calls in flight of at
// least binding × the limit in force, the whole number admissions meet (a
// fractional estimate after a cut, 4.7 say, admits 4, which must count as
// using it).
func (l *adaptiveLimit) binds(w latencyWindow) bool {
	return float64(w.peak) >= binding*float64(l.limit.Load())
}

// set moves the limit to x, within the floor and the ceiling.
func (l *adaptiveLimit) set(s *shared, now int64, x float64) {
	x = min(max(x, float64(s.policy.MinConcurrent)), float64(s.policy.MaxConcurrent))
	if x == l.estimate {
		return
	}
	l.estimate = x
	l.limit.Store(int64(x))
	l.changed = now
}

// reset forgets what the limit learned (ClearState): it starts again at
// the ceiling.
func (l *adaptiveLimit) reset(s *shared) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.estimate = float64(s.policy.MaxConcurrent)
	l.limit.Store(int64(s.policy.MaxConcurrent))
	l.learning.Store(true)
	l.noLoad, l.changed, l.stuck, l.window = 0, s.clock(), 0, latencyWindow{}
}

// status fills the limit's part of a host's status.
func (l *adaptiveLimit) status(st *HostStatus) { st.Limit = int(l.limit.Load()) }
