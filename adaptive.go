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
//   - A 429 or 503 is the host shedding load: it is past its knee. It
//     comes at once, so its latency is none of the host's service: it
//     marks its window, counts toward closing it (after the first), and
//     gives no latency.
//   - A window queues when its mean exceeds tolerance × noLoad, or when the
//     host shed a call in it.
//   - The limit moves only when it binds (a window saw calls in flight of
//     at least binding × the limit in force, a whole number, each answer
//     counting its own call even when its slot went back with a body-less
//     answer), or on a 429 or 503: a latency rise
//     while the calls in flight stay under it is noise, or a queue this
//     limit did not build.
//   - A binding window that did not queue grows the limit by a twentieth
//     (at least 1) and lowers noLoad to its mean if lower.
//   - A binding window that queued sets the limit to what the host serves
//     without a queue, its throughput times noLoad (Little's law), with
//     headroom; at most 0.9 × the limit after a 429 or 503. However long
//     the backlog, one step lands on the knee. The throughput is smoothed
//     over the binding windows in a row (answers come in bursts, and a
//     window of a round trip holds one or two).
//   - Answers to calls admitted before the limit last moved say nothing of
//     the new limit and are left out.
//   - When stuckAfter queueing windows in a row fail to lower the latency,
//     the cuts are not what moves it (the host got slower, or other
//     clients fill it): the latency becomes the new noLoad and the limit
//     goes back to where the run of cuts began.
//   - Every probeEvery unloaded latencies (±25%), a binding window that
//     did not queue starts a probe: the limit steps down by a quarter a
//     window while the latency falls with it (a queue was in noLoad:
//     other clients' when the limit first measured the host, say, since
//     drained), then lands on the throughput times the lowest latency
//     seen, probing again at once, or back where it was if none was lower;
//     a latency falling well below noLoad starts one at once too. Only
//     this can see a noLoad taken too high: at a limit that holds the
//     latency at noLoad, every window looks unqueued.
//
// Under overload the limit thus saws between the knee and tolerance times
// it. Caller cancellations, transport errors and refusals give no sample;
// the circuit's half-open probes do. At the limit, Sheddable calls are refused first (they may use
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
	// throughput is the host's answers per nanosecond, smoothed over the
	// windows that used the limit (used: the latest did).
	throughput float64
	used       bool
	changed    int64 // when the limit last moved
	window     latencyWindow
	// The run of queueing windows whose cuts did not lower the latency.
	stuck       int
	lastMean    int64   // the mean of the latest queueing window
	beforeStuck float64 // the limit when the run began
	// The probe for a lower unloaded latency: when the next starts, and
	// the one under way (depth 0: none).
	nextProbe int64
	probe     probe
}

// probe is a probe under way: the limit stepped down depth times from from,
// while the host served rate at from with latency mean, and the unloaded
// latency was noLoad.
type probe struct {
	depth        int
	from, rate   float64
	mean, noLoad int64
}

// latencyWindow gathers the answers of one window.
type latencyWindow struct {
	opened     int64 // when its first sample came
	samples    int   // answers sampled
	timed      int   // of which served, not shed: their latency counts
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
	probeEvery   = 100  // unloaded latencies between probes, ±25%
	probeDepth   = 6    // steps at most in one probe
	probeStep    = 0.75 // each step of a probe lowers the limit by a quarter
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
	w.peak = max(w.peak, inFlight, 1)
	if status == 429 || status == 503 {
		// The host shed the call: past its knee. How soon it said so
		// is no latency of its service (a shed answer comes at once),
		// and until the first window sets the unloaded latency it counts
		// for nothing else.
		w.overloaded = true
		if l.noLoad == 0 {
			return
		}
		w.samples++
	} else {
		w.samples++
		w.timed++
		latency := max(at-start, 0)
		w.sum += latency
		if w.timed == 1 || latency < w.low {
			w.low = latency
		}
		if w.timed <= earlySamples {
			w.early += latency
		}
	}
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
	mean := l.noLoad // a window of shed answers only: no latency
	if w.timed > 0 {
		mean = w.sum / int64(w.timed)
	}
	if l.probe.depth > 0 {
		l.probed(s, now, w, mean)
		return
	}
	l.measure(w, now, answers)
	if l.noLoad == 0 { // the first window: the limit leaves the ceiling
		l.learning.Store(false)
		defer l.scheduleProbe(s, now)
		ceiling := min(l.estimate, float64(w.peak)*2)
		if w.overloaded { // the host shed calls at this peak: it is past its knee
			ceiling = min(ceiling, float64(w.peak)*0.9)
		}
		if early := w.early / earlySamples; float64(mean) > tolerance*float64(max(early, 1)) {
			// A queue built as the window went on: the first answers,
			// before it (a pool that starts at once), came in the unloaded
			// latency, the later ones waited. The host serves its
			// throughput over the window at that latency without a queue
			// (Little's law). A slow first answer (a connection's setup)
			// is no queue: it raises the early mean instead.
			l.noLoad = max(early, 1)
			l.set(s, now, min(ceiling, l.unqueued()))
			return
		}
		l.noLoad = max(mean, 1)
		l.set(s, now, ceiling)
		return
	}
	if !w.overloaded && float64(mean) <= tolerance*float64(l.noLoad) {
		if float64(mean)*tolerance < float64(l.noLoad) {
			// The latency fell well below the unloaded one: that one had
			// a queue in it (other clients' that left, say), and there
			// may be more of it to find. Probe now, not in a hundred.
			l.nextProbe = now
		}
		l.noLoad = min(l.noLoad, max(mean, 1))
		l.stuck = 0
		if l.binds(w) {
			l.set(s, now, l.estimate+max(1, l.estimate*growth))
			if now >= l.nextProbe {
				l.startProbe(s, now, mean)
			}
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
	target := min(l.unqueued(), l.estimate)
	if w.overloaded {
		target = min(target, l.estimate*0.9)
	}
	l.set(s, now, target)
}

// startProbe lowers the limit by a quarter for a window, to see whether
// the host answers faster with fewer calls in flight: whether its unloaded latency, noLoad,
// was taken with a queue in it (other clients' queue when the limit first
// measured, say, that has since drained). Nothing else can tell: at a
// limit that holds the latency at noLoad, every window looks unqueued. It
// starts only from a window that used the limit, so its refusals fall on a
// load that was being refused already, and no more often than every
// probeEvery unloaded latencies: a window or two in a hundred.
func (l *adaptiveLimit) startProbe(s *shared, now, mean int64) {
	defer l.scheduleProbe(s, now)
	if l.estimate*probeStep < float64(s.policy.MinConcurrent) {
		return
	}
	l.probe = probe{depth: 1, from: l.estimate, rate: l.throughput, mean: mean, noLoad: l.noLoad}
	l.set(s, now, l.estimate*probeStep)
}

// probed judges a probe's window w, closed at now with mean latency. A
// latency that fell with the calls in flight, by more than tolerance, was
// partly a queue (at a saturated host latency follows the calls in flight;
// at its knee or under it, it holds): it is the new noLoad, and the probe
// steps down again. Then the limit is what the host serves without a queue
// at the new noLoad (Little's law) and the next probe comes at once, there
// may be more queue to find; or, if the latency did not fall, the limit
// goes back where it was. (The throughput of a window this short is too
// noisy to judge by: the latency says it.)
func (l *adaptiveLimit) probed(s *shared, now int64, w latencyWindow, mean int64) {
	p := &l.probe
	if !w.overloaded && w.timed > 0 && float64(mean)*tolerance < float64(p.mean) {
		l.noLoad = min(l.noLoad, max(mean, 1))
		if p.depth < probeDepth && l.estimate*probeStep >= float64(s.policy.MinConcurrent) {
			p.depth, p.mean = p.depth+1, mean
			l.set(s, now, l.estimate*probeStep)
			return
		}
	}
	target := p.from
	found := l.noLoad < p.noLoad
	if found {
		target = min(target, p.rate*float64(l.noLoad)*headroom)
	}
	l.probe, l.used, l.stuck = probe{}, false, 0
	l.set(s, now, target)
	if found {
		l.nextProbe = now
	}
}

// scheduleProbe sets when the next probe may start: probeEvery unloaded
// latencies from now, give or take a quarter (a fleet's members, started
// together, do not probe together).
func (l *adaptiveLimit) scheduleProbe(s *shared, now int64) {
	l.nextProbe = now + int64(float64(probeEvery*l.noLoad)*(0.75+0.5*s.random()))
}

// unqueued is how many calls in flight the host serves without a queue,
// with headroom: its throughput times its unloaded latency (Little's law).
func (l *adaptiveLimit) unqueued() float64 {
	return l.throughput * float64(l.noLoad) * headroom
}

// measure takes the throughput of window w, which closed at now when
// answers had been counted, into the host's throughput. A window that used
// the limit measured what the host serves at it: half its own throughput,
// half that of the windows before it, as long as they used it too.
// Answers come in bursts (a pool that started at once answers together),
// and a window of a round trip or two holds one burst or two: one window
// alone is off by up to half. A window under the limit measured the load,
// not the host, and starts over.
func (l *adaptiveLimit) measure(w latencyWindow, now, answers int64) {
	rate := float64(answers-w.answered) / float64(max(now-w.opened, 1))
	used := w.overloaded || l.binds(w)
	if l.used && used {
		rate = (l.throughput + rate) / 2
	}
	l.throughput, l.used = rate, used
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
	l.noLoad, l.throughput, l.used, l.changed, l.stuck, l.window = 0, 0, false, s.clock(), 0, latencyWindow{}
	l.nextProbe, l.probe = 0, probe{}
}

// status fills the limit's part of a host's status.
func (l *adaptiveLimit) status(st *HostStatus) { st.Limit = int(l.limit.Load()) }
