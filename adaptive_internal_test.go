package httpbreaker

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The adaptive limit's rules, fed answers directly: a limit, a clock
// offset, and windows of samples of chosen latency and concurrency.

type limitHarness struct {
	s   *shared
	l   *adaptiveLimit
	now int64 // the clock offset the next window starts at
}

func newLimitHarness(p Policy) *limitHarness {
	p.AdaptiveConcurrency = true
	epoch := time.Unix(1_700_000_000, 0)
	s := &shared{policy: p.withDefaults(), epoch: epoch, now: func() time.Time { return epoch }, random: rand.Float64}
	return &limitHarness{s: s, l: newAdaptiveLimit(s), now: 1} // an admission at offset 0 would read as not timed
}

// window feeds n answers with status, each admitted latency before it
// returns, returning evenly over one latency from h.now (two for the first
// window, which spans twice its quickest answer), with inFlight calls
// holding slots; then moves h.now past them. A window closes once it holds
// 10 answers spanning the unloaded latency, so windows of n ≥ 11 close on
// their own last answer.
func (h *limitHarness) window(n int, latency time.Duration, inFlight int, status int) {
	spread := int64(latency)
	if h.l.noLoad == 0 {
		spread *= 2
	}
	for i := range n {
		at := h.now + int64(latency) + int64(i)*spread/int64(n-1)
		h.l.learn(h.s, at-int64(latency), at, status, int64(inFlight))
	}
	h.now += int64(latency) + spread + 1
}

func (h *limitHarness) limit() int { return int(h.l.limit.Load()) }

const unloaded = 10 * time.Millisecond

func TestAdaptiveLimitLeavesTheCeilingAtTwiceTheConcurrencySeen(t *testing.T) {
	h := newLimitHarness(Policy{})
	assert.Equal(t, DefaultMaxConcurrent, h.limit(), "a new host starts at the ceiling")
	h.window(11, unloaded, 15, http.StatusOK)
	assert.Equal(t, 30, h.limit())
}

func TestAdaptiveLimitGrowsWhileLatencyHoldsUpToTheCeiling(t *testing.T) {
	h := newLimitHarness(Policy{MaxConcurrent: 40})
	h.window(11, unloaded, 10, http.StatusOK) // 20
	previous := h.limit()
	for range 30 {
		h.window(40, unloaded, h.limit(), http.StatusOK) // every slot taken, no queue
		assert.GreaterOrEqual(t, h.limit(), previous)
		previous = h.limit()
	}
	assert.Equal(t, 40, h.limit(), "grown to the ceiling, and no further")
}

func TestAdaptiveLimitHoldsWhenItDoesNotBind(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 20, http.StatusOK) // 40
	h.window(20, unloaded, 10, http.StatusOK) // a quarter of it in use: no growth
	assert.Equal(t, 40, h.limit())
	h.window(20, 3*unloaded, 10, http.StatusOK) // slower, but the calls in flight are far under the limit
	assert.Equal(t, 40, h.limit(), "a latency rise this limit did not build moves nothing")
}

func TestAdaptiveLimitFallsToTheKnee(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 50, http.StatusOK) // 100
	// 100 calls in flight on a host of 40 workers: each takes 2.5 times the
	// unloaded latency, and 40 answers come per unloaded latency.
	h.window(100, 5*unloaded/2, 100, http.StatusOK)
	assert.InDelta(t, 40*headroom, h.limit(), 2, "throughput times unloaded latency, in one step")
}

func TestAdaptiveLimitFallsOnTooManyRequests(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 50, http.StatusOK) // 100
	h.window(20, unloaded, 100, http.StatusServiceUnavailable)
	assert.LessOrEqual(t, h.limit(), 90, "a host shedding load is past its knee, whatever its latency")
	before := h.limit()
	h.window(20, unloaded, before, http.StatusTooManyRequests)
	assert.Less(t, h.limit(), before)
}

func TestAdaptiveLimitStopsAtTheFloor(t *testing.T) {
	h := newLimitHarness(Policy{MinConcurrent: 30})
	h.window(11, unloaded, 5, http.StatusOK)
	assert.Equal(t, 30, h.limit(), "the first window's 2×5 is under the floor")
	h.window(20, 10*unloaded, 30, http.StatusOK) // a tenth of the throughput it needs
	assert.Equal(t, 30, h.limit())
}

func TestAdaptiveLimitIgnoresCallsAdmittedBeforeItMoved(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 50, http.StatusOK) // 100, moved at the last answer
	// Slow answers to calls admitted before that move.
	for i := range 20 {
		at := h.now + int64(i)
		h.l.learn(h.s, 1, at, http.StatusOK, 100)
	}
	assert.Equal(t, 100, h.limit())
	assert.Zero(t, h.l.window.samples)
}

func TestAdaptiveLimitLearnsOnlyFromAnswers(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 50, 0) // transport errors, caller cancellations: status 0
	assert.Equal(t, DefaultMaxConcurrent, h.limit())
	assert.Zero(t, h.l.window.samples)
}

// A host that got slower for good, with nothing queued: cutting the limit
// does not bring its latency down, so after a few tries its latency is
// taken as the new unloaded one and the limit goes back.
func TestAdaptiveLimitTakesALastingSlowdownAsTheNewNormal(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 20, http.StatusOK) // 40
	var limits []int
	for range stuckAfter + 1 {
		h.window(40, 3*unloaded, h.limit(), http.StatusOK)
		limits = append(limits, h.limit())
	}
	assert.Less(t, limits[0], 40, "first it cuts")
	assert.GreaterOrEqual(t, limits[len(limits)-1], 40, "then it gives the cuts back: %v", limits)
	assert.Equal(t, int64(3*unloaded), h.l.noLoad)
	h.window(40, 3*unloaded, h.limit(), http.StatusOK)
	assert.GreaterOrEqual(t, h.limit(), 40, "the slow latency is now the normal one")
}

func TestAdaptiveLimitSharesItselfByCriticality(t *testing.T) {
	h := newLimitHarness(Policy{MaxConcurrent: 45})
	h.window(11, unloaded, 20, http.StatusOK) // 40
	assert.Equal(t, 30, admitted(h, Sheddable))
	assert.Equal(t, 40, admitted(h, Critical))
	assert.Equal(t, 45, admitted(h, CriticalPlus), "a quarter over, up to the ceiling")

	h = newLimitHarness(Policy{})
	h.window(11, unloaded, 1, http.StatusOK) // 2
	assert.Equal(t, 1, admitted(h, Sheddable), "always at least one")
	assert.Equal(t, 3, admitted(h, CriticalPlus))
}

func TestAdaptiveLimitResetStartsOver(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 20, http.StatusOK)
	h.l.reset(h.s)
	assert.Equal(t, DefaultMaxConcurrent, h.limit())
	assert.Zero(t, h.l.noLoad)
}

// A share sampleShare of the calls is timed: those get their admission
// stamped, and only their answers are learned from.
func TestAdaptiveLimitTimesAShareOfTheCalls(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.s.now = func() time.Time { return h.s.epoch.Add(time.Second) }
	draw := 0.0
	h.s.random = func() float64 { return draw }
	_, tk := h.l.admits(h.s, Critical, ticket{})
	assert.NotZero(t, tk.start)
	assert.Equal(t, int64(time.Second), tk.start)

	draw = sampleShare
	_, tk = h.l.admits(h.s, Critical, ticket{})
	assert.NotZero(t, tk.start, "until its first window, every call is timed")
	h.window(11, unloaded, 20, http.StatusOK)
	_, tk = h.l.admits(h.s, Critical, ticket{})
	assert.Zero(t, tk.start, "not timed: no clock read")
	for range 20 {
		h.l.learn(h.s, tk.start, int64(time.Second), http.StatusOK, 1)
	}
	assert.Zero(t, h.l.window.samples, "an untimed call teaches nothing")
}

// admitted is how many calls in flight a call of criticality c may join.
func admitted(h *limitHarness, c Criticality) int {
	limit, _ := h.l.admits(h.s, c, ticket{})
	return limit
}

// After a cut the estimate is fractional while calls in flight are whole:
// a limit of 4.7 admits 4, and 4 calls in flight use it. Once the host
// recovers the limit grows again from there (it stayed cut for good when
// binding was measured against 4.7).
func TestAdaptiveLimitGrowsFromAFractionalEstimate(t *testing.T) {
	h := newLimitHarness(Policy{MaxConcurrent: 40})
	h.window(11, unloaded, 10, http.StatusOK) // 20, noLoad 10ms
	h.l.mu.Lock()
	h.l.set(h.s, h.now, 4.7)
	h.l.mu.Unlock()
	h.now++ // calls admitted after the cut
	assert.Equal(t, 4, h.limit())
	for range 5 {
		h.window(20, unloaded, h.limit(), http.StatusOK) // every slot taken, no queue
	}
	assert.Greater(t, h.limit(), 4, "a limit used in full grows, whatever its fraction")
}

// A pool that starts at once builds a queue within the first window: its
// first answers come in the unloaded latency, the later ones wait. The
// first window then sets the limit to what the host serves without a
// queue (throughput × the early latency), not to twice the pool. A slow
// first answer followed by quick ones (a connection's setup) is no queue.
func TestAdaptiveLimitFirstWindowSeesAQueueBuilding(t *testing.T) {
	h := newLimitHarness(Policy{})
	// 200 calls in flight on a host of 40 workers of 10ms: 40 answers at
	// 10ms, 40 at 20ms, then one at 30ms.
	for batch := 1; batch <= 3; batch++ {
		n := 40
		if batch == 3 {
			n = 1
		}
		at := h.now + int64(batch)*int64(unloaded)
		for range n {
			h.l.learn(h.s, h.now, at, http.StatusOK, 200)
		}
	}
	assert.InDelta(t, 42, h.limit(), 2, "4000 calls/s × 10ms, with headroom: the knee, not 400")
	assert.Equal(t, int64(unloaded), h.l.noLoad)

	h = newLimitHarness(Policy{})
	h.l.learn(h.s, h.now, h.now+int64(50*time.Millisecond), http.StatusOK, 1) // the connection's setup
	for i := range 12 {
		at := h.now + int64(50*time.Millisecond) + int64(i+1)*int64(unloaded)
		h.l.learn(h.s, at-int64(unloaded), at, http.StatusOK, 1)
	}
	assert.Equal(t, 2, h.limit(), "one call at a time: twice that, as before")
}

// A host that sheds a call answers 503 at once: that is no latency of its
// service. Taken as one, the first window set the unloaded latency to
// microseconds and every later window looked queued, cutting the limit to
// the floor.
func TestAdaptiveLimitTakesNoLatencyFromShedAnswers(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, time.Microsecond, 50, http.StatusServiceUnavailable)
	h.window(11, unloaded, 50, http.StatusOK)
	assert.Equal(t, int64(unloaded), h.l.noLoad, "the unloaded latency of the answers served")
	assert.LessOrEqual(t, h.limit(), 45, "the host shed calls at 50 in flight: past its knee")
	assert.Greater(t, h.limit(), 20, "not the floor")
}

// saturated is a host of 40 workers serving a call in 10ms: the latency of
// inFlight calls, a queue beyond 40.
func saturated(inFlight int) time.Duration {
	return max(unloaded, time.Duration(inFlight)*unloaded/40)
}

// A limit that first measured a host while other clients kept it queueing
// took that queue's latency as unloaded: once the others left, every window
// at a limit of twice the knee looked unqueued. The probe lowers the limit
// until the latency stops falling, and the limit lands on the knee.
func TestAdaptiveLimitProbesForALowerUnloadedLatency(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, 25*time.Millisecond, 50, http.StatusOK) // noLoad 25ms, limit 100: the others' queue
	for range 400 {                                      // the others gone: the host is this client's
		n := h.limit()
		h.window(n, saturated(n), n, http.StatusOK)
	}
	assert.Less(t, h.l.noLoad, int64(12*time.Millisecond), "the host's own unloaded latency")
	assert.InDelta(t, 42, h.limit(), 12, "near the knee of 40")
}

// A probe on a host whose unloaded latency was right finds no lower one
// and changes nothing lasting.
func TestAdaptiveLimitProbeLeavesARightUnloadedLatency(t *testing.T) {
	h := newLimitHarness(Policy{})
	h.window(11, unloaded, 20, http.StatusOK) // noLoad 10ms, limit 40
	lowest := h.limit()
	for range 400 {
		n := h.limit()
		h.window(n, saturated(n), n, http.StatusOK)
		lowest = min(lowest, h.limit())
	}
	assert.Equal(t, int64(unloaded), h.l.noLoad)
	assert.InDelta(t, 42, h.limit(), 10, "near the knee of 40")
	assert.Less(t, lowest, 36, "a probe lowered the limit on the way")
}
