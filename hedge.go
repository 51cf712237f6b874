package httpbreaker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// hedging is a host's hedged requests (Policy.HedgeAfter), "The Tail at
// Scale"'s cure for a host slow for a few calls in a hundred: a replayable
// request without response headers after HedgeAfter gets another attempt,
// up to MaxHedges, and the first answer the classifier calls a success
// wins. A hedge is sent only while the host's circuit is closed and it
// sheds nothing, with a concurrency slot of its own under MaxConcurrent
// and, under RetryBudget, a withdrawal from the retry budget — so hedges
// can never multiply an outage: a host in trouble gets none. Made with the
// host when the policy sets HedgeAfter.
type hedging struct {
	// hedges counts the hedged attempts sent; wins the calls a hedged
	// attempt answered.
	hedges, wins atomic.Uint64
}

// WithoutHedging returns a context whose requests are never hedged
// (Policy.HedgeAfter): for a request that must reach the host once, or
// whose latency does not matter.
func WithoutHedging(ctx context.Context) context.Context {
	c := controlsOf(ctx)
	c.noHedge = true
	return withControls(ctx, c)
}

// hedgeable reports whether req may be hedged: replayable by net/http's
// own rule (GET, HEAD, OPTIONS or TRACE, or an Idempotency-Key or
// X-Idempotency-Key header; and no body, or a GetBody), and not an upgrade
// (a WebSocket handshake must not be made twice). WithoutHedging is read
// with the request's other controls (hostOf).
func hedgeable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		_, key := req.Header["Idempotency-Key"]
		_, xKey := req.Header["X-Idempotency-Key"]
		if !key && !xKey {
			return false
		}
	}
	_, upgrade := req.Header["Upgrade"]
	return !upgrade
}

// status fills the rule's part of a host's status.
func (h *hedging) status(st *HostStatus) {
	st.Total.Hedges, st.Total.HedgeWins = h.hedges.Load(), h.wins.Load()
}

// hedgeTimer is what a race needs of its timer: a *time.Timer, or a
// test's that fires when the test says.
type hedgeTimer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// startHedgeTimer starts a race's timer: f runs on a goroutine of its own
// after d, and after each Reset.
var startHedgeTimer = func(d time.Duration, f func()) hedgeTimer { return time.AfterFunc(d, f) }

// hedgeAnswer is one attempt's answer.
type hedgeAnswer struct {
	resp   *http.Response
	err    error
	cancel context.CancelFunc // the attempt's own context
	hedge  bool               // a hedged attempt, not the first
}

// race is one hedged call: its attempts, the timer that sends the next,
// and the answer once decided. Each attempt, as it answers, is judged at
// once (finish), so a winning hedge cancels the first attempt the caller's
// goroutine is waiting on. Races are pooled with their timer and its
// func, so that a call answered before HedgeAfter costs a timer's reset
// and stop, its context and its request copy; a race whose timer fired is
// never pooled again (its timer's goroutine may still look at it).
type race struct {
	s        *shared
	h        *hedging
	b        *breaker
	r        *hostRules
	req      *http.Request // the caller's
	base     http.RoundTripper
	classify Classifier
	// attempts counts the hedges that have not finished; the caller waits
	// for it, so none outlives the call.
	attempts sync.WaitGroup
	fire     func() // the timer's: rc.hedge

	mu       sync.Mutex
	decided  sync.Cond // on mu: signalled when done is set
	timer    hedgeTimer
	cancels  [1 + maxHedges]context.CancelFunc // of the attempts in flight, by index
	sent     int                               // hedges sent
	inFlight int
	over     bool // no hedge is to be sent any more
	stopped  bool // the timer was stopped before it ever fired
	fired    bool // the timer fired
	done     bool // decided
	answer   hedgeAnswer
	first    hedgeAnswer // the first attempt's failed answer, kept while hedges are in flight
	kept     bool        // first holds it
}

// races pools races whose timer never fired.
var races = sync.Pool{New: func() any {
	rc := new(race)
	rc.decided.L = &rc.mu
	rc.fire = rc.hedge
	return rc
}}

// pooledRaces is unset by tests that drive the timers themselves: each
// call then gets a timer of its own.
var pooledRaces = true

// newRace readies a race for one call of req, whose first attempt's
// context cancel ends. It is filled and its timer armed under rc.mu, which
// the timer's func takes first: what the call wrote is what it reads.
func newRace(s *shared, h *hedging, b *breaker, r *hostRules, req *http.Request, base http.RoundTripper, classify Classifier, cancel context.CancelFunc) *race {
	var rc *race
	if pooledRaces {
		rc = races.Get().(*race)
	} else {
		rc = races.New().(*race)
	}
	rc.mu.Lock()
	rc.s, rc.h, rc.b, rc.r, rc.req, rc.base, rc.classify = s, h, b, r, req, base, classify
	rc.cancels[0], rc.inFlight = cancel, 1
	if rc.timer == nil {
		rc.timer = startHedgeTimer(s.policy.HedgeAfter, rc.fire)
	} else {
		rc.timer.Reset(s.policy.HedgeAfter)
	}
	rc.mu.Unlock()
	return rc
}

// release returns rc to the pool if its timer never fired.
func (rc *race) release() {
	if !pooledRaces || !rc.stopped {
		return
	}
	// Only what a call set is cleared: zeroing the whole race costs a
	// write barrier per pointer it holds.
	rc.s, rc.h, rc.b, rc.r, rc.req, rc.base, rc.classify = nil, nil, nil, nil, nil, nil, nil
	clear(rc.cancels[:1+rc.sent])
	rc.answer, rc.first = hedgeAnswer{}, hedgeAnswer{}
	rc.sent, rc.inFlight = 0, 0
	rc.over, rc.stopped, rc.fired, rc.done, rc.kept = false, false, false, false, false
	races.Put(rc)
}

// send sends req, a call b's circuit admitted (holding the call's slot
// under MaxConcurrent), with hedges: the first attempt on the caller's
// goroutine, each hedge on its timer's. The first answer classify calls
// a success wins and the other attempts are canceled. A failure ends the
// hedging: if no other attempt is in flight it is the call's answer at
// once (hedges are for slowness; a failing host is for the breaker and
// the retry layers), otherwise the call waits for the attempts in flight,
// and if none succeeds gets its first attempt's answer. Every loser is
// canceled and its body closed before send returns, so no attempt
// outlives the call; only the winner's answer is the call's, and judged
// as such.
func (h *hedging) send(s *shared, b *breaker, r *hostRules, req *http.Request, base http.RoundTripper, classify Classifier) (*http.Response, error) {
	if !hedgeable(req) {
		return attempt(s, r, req, base)
	}
	ctx, cancel := context.WithCancel(req.Context())
	rc := newRace(s, h, b, r, req, base, classify, cancel)
	answered := false
	defer func() {
		if !answered { // the base panicked: no hedge may outlive the call
			rc.mu.Lock()
			rc.stop()
			rc.done = true
			rc.cancelAll(-1)
			rc.mu.Unlock()
			rc.attempts.Wait()
		}
	}()
	resp, err := attempt(s, r, req.WithContext(ctx), base)
	answered = true
	rc.finish(0, hedgeAnswer{resp: resp, err: err, cancel: cancel})
	rc.mu.Lock()
	for !rc.done {
		rc.decided.Wait()
	}
	rc.mu.Unlock()
	rc.attempts.Wait()
	answer := rc.answer
	rc.release()
	if answer.hedge {
		h.wins.Add(1)
	}
	return answer.own(req)
}

// finish judges attempt i's answer as it comes: the first success wins and
// cancels the others; a failure stops the hedging, and is the call's
// answer when no attempt is left in flight (the first attempt's, if it
// failed, else this one); an answer after the decision loses.
func (rc *race) finish(i int, a hedgeAnswer) {
	won := rc.classify(a.resp, a.err).normal() == Success
	rc.mu.Lock()
	rc.inFlight--
	rc.cancels[i] = nil
	switch {
	case rc.done:
		rc.mu.Unlock()
		a.lose()
		return
	case won:
		rc.decide(a)
		rc.cancelAll(i)
		if rc.kept {
			defer rc.first.lose()
		}
	case rc.inFlight > 0:
		rc.stop()
		if i == 0 {
			rc.first, rc.kept = a, true
		} else {
			defer a.lose()
		}
	case rc.kept:
		rc.decide(rc.first)
		defer a.lose()
	default:
		rc.decide(a)
	}
	rc.mu.Unlock()
}

// decide makes a the call's answer and stops the hedging. Requires rc.mu.
func (rc *race) decide(a hedgeAnswer) {
	rc.stop()
	rc.done, rc.answer = true, a
	rc.decided.Broadcast()
}

// stop ends the sending of hedges. Requires rc.mu.
func (rc *race) stop() {
	if !rc.over {
		rc.stopped = rc.timer.Stop() && !rc.fired
	}
	rc.over = true
}

// cancelAll cancels every attempt in flight but attempt except. Requires
// rc.mu.
func (rc *race) cancelAll(except int) {
	for i, cancel := range rc.cancels[:1+rc.sent] {
		if i != except && cancel != nil {
			cancel()
		}
	}
}

// hedge sends a hedged attempt, on the timer's goroutine, when the call
// is not decided and every gate is open: the circuit closed, the host
// shedding nothing, a concurrency slot free and, under RetryBudget, a
// withdrawal from the budget. A hedge refused by a gate is not sent, and
// neither is any later one.
func (rc *race) hedge() {
	rc.mu.Lock()
	rc.fired = true
	s, r, h := rc.s, rc.r, rc.h
	if rc.over || !rc.gatesOpen() {
		rc.over = true
		rc.mu.Unlock()
		return
	}
	rc.sent++
	rc.inFlight++
	rc.attempts.Add(1)
	defer rc.attempts.Done()
	ctx, cancel := context.WithCancel(rc.req.Context())
	i := rc.sent
	rc.cancels[i] = cancel
	if rc.sent < s.policy.MaxHedges {
		rc.timer.Reset(s.policy.HedgeAfter)
	}
	rc.mu.Unlock()
	h.hedges.Add(1)

	req := rc.req.WithContext(ctx)
	var resp *http.Response
	var err error
	if req.Body != nil && req.Body != http.NoBody {
		req.Body, err = req.GetBody()
	}
	if err == nil {
		resp, err = rc.attempt(req)
	} else if s.caps {
		r.slots.release() // the slot the gate took, for a request never sent
	}
	rc.finish(i, hedgeAnswer{resp: resp, err: err, cancel: cancel, hedge: true})
}

// attempt sends a hedged attempt. A panic of the base here, on a goroutine
// the caller never made, would end the program: it becomes the attempt's
// error instead.
func (rc *race) attempt(req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("httpbreaker: the base transport panicked in a hedged attempt: %v", p)
		}
	}()
	return attempt(rc.s, rc.r, req, rc.base)
}

// attempt sends one attempt of a call: under MaxConcurrent through the
// cap, which holds a slot the attempt has taken.
func attempt(s *shared, r *hostRules, req *http.Request, base http.RoundTripper) (*http.Response, error) {
	if s.caps {
		return r.slots.send(req, base)
	}
	return fromBase(base.RoundTrip(req))
}

// gatesOpen takes what a hedge needs, or reports false having taken
// nothing: the caller still waiting, and the host's gates open. Requires
// rc.mu.
func (rc *race) gatesOpen() bool {
	return rc.req.Context().Err() == nil && rc.r.hedgeGates(rc.s, rc.b)
}

// hedgeGates takes what a hedge to b needs — the circuit closed, the host
// shedding nothing, a concurrency slot under MaxConcurrent and, under
// RetryBudget, a withdrawal from the budget — or reports false having
// taken nothing.
func (r *hostRules) hedgeGates(s *shared, b *breaker) bool {
	if b.current(s) != StateClosed || b.shedding(s) {
		return false
	}
	if s.caps {
		limit := s.policy.MaxConcurrent
		if s.adapts {
			limit, _ = r.limit.admits(s, Critical, ticket{start: 1}) // a timed ticket: no sample taken
		}
		if !r.slots.acquire(limit) {
			return false
		}
	}
	if s.budgets && !r.budget.get().takeHedge(s, b.more.window) {
		if s.caps {
			r.slots.release()
		}
		return false
	}
	return true
}

// lose cancels a losing attempt and closes what it answered.
func (a *hedgeAnswer) lose() {
	a.cancel()
	if a.resp != nil {
		discard(a.resp)
	}
}

// own makes the winner the caller's: its response names the caller's
// request, and its context is canceled once its body is closed or read to
// the end (at once, for a response without one).
func (a *hedgeAnswer) own(req *http.Request) (*http.Response, error) {
	if a.resp == nil {
		a.cancel()
		return nil, a.err
	}
	a.resp.Request = req
	if cannotHaveBody(req, a.resp) {
		a.cancel()
		return a.resp, nil
	}
	a.resp.Body = &hedgedBody{ReadCloser: a.resp.Body, cancel: a.cancel}
	return a.resp, nil
}

// hedgedBody is the winner's body: closing it, or reading it to its end,
// releases the attempt's context.
type hedgedBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (hb *hedgedBody) Read(p []byte) (int, error) {
	n, err := hb.ReadCloser.Read(p)
	if err != nil {
		hb.cancel()
	}
	return n, err
}

func (hb *hedgedBody) Close() error {
	err := hb.ReadCloser.Close()
	hb.cancel()
	return err
}
