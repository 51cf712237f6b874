package httpbreaker

import (
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
)

// overload is a host's overload protection: adaptive throttling and the
// concurrency cap. It is made with the breaker when the policy sets
// Throttle or MaxConcurrent, and lives in breakerMore, so the breakers of
// other policies pay nothing for it.
type overload struct {
	// throttle is the throttle's own counts; nil unless Throttle is set.
	throttle *throttleCounts
	// inFlight counts calls holding a slot (MaxConcurrent only).
	inFlight atomic.Int64
	// shed counts refusals for overload since the host was first tracked.
	shed atomic.Uint64
	// lastShed is the clock offset of the latest refusal for overload.
	lastShed atomic.Int64
	// shedding is set while listeners were told the host sheds and not yet
	// that it stopped. Written under the breaker's mu.
	shedding atomic.Bool
	// throttled and full are the refusals, built once.
	throttled, full OverloadError
}

// throttleCounts are the throttle's windows. Unlike the rate window they
// are kept when the circuit opens and closes again: a good probe does not
// mean the overload ended, and a throttle starting empty after each close
// would let the first calls through at full rate, into the breaker's
// consecutive rule. ClearState empties them.
type throttleCounts struct {
	// calls counts the accepts (as successes) and the other requests —
	// failures and refusals for overload — (as failures) while closed.
	calls rateWindow
	// mix counts, as failures, the calls attempted at each criticality
	// (Sheddable, Critical, CriticalPlus) while the throttle refuses: what
	// its refusals are shared out over. Made the first time it refuses, so
	// a host never throttled pays a pointer for it.
	mix atomic.Pointer[[3]rateWindow]
}

func newOverload(host string, s *shared) *overload {
	o := &overload{
		throttled: OverloadError{Host: host, Throttled: true},
		full:      OverloadError{Host: host},
	}
	if s.policy.Throttle > 0 {
		o.throttle = new(throttleCounts)
	}
	return o
}

// attempts returns the criticality mix, making it on first use.
func (tc *throttleCounts) attempts() *[3]rateWindow {
	if mix := tc.mix.Load(); mix != nil {
		return mix
	}
	tc.mix.CompareAndSwap(nil, new([3]rateWindow))
	return tc.mix.Load()
}

// reset empties the throttle's windows.
func (tc *throttleCounts) reset() {
	tc.calls.reset()
	if mix := tc.mix.Load(); mix != nil {
		for i := range mix {
			mix[i].reset()
		}
	}
}

// shed applies the overload rules to a call the circuit admitted, and
// returns the refusal if one refuses it. Otherwise, when the policy caps
// calls in flight, the call now holds a slot (see sendHolding) — unless
// eviction forgot b as the slot was taken: then moved is set, nothing is
// held, and the caller starts again with the key's new breaker.
// Throttling applies to closed circuits only; the cap to probes too.
func (t *Transport) shed(req *http.Request, b *breaker, tk ticket) (refusal *OverloadError, moved bool) {
	o := b.more.overload
	p := &t.s.policy
	if p.Throttle > 0 && !tk.probe && b.throttles(&t.s, req) {
		return b.refuseOverload(&t.s, &o.throttled, tk), false
	}
	if p.MaxConcurrent > 0 {
		if o.inFlight.Add(1) > int64(p.MaxConcurrent) {
			o.inFlight.Add(-1)
			return b.refuseOverload(&t.s, &o.full, tk), false
		}
		if b.forgotten.Load() { // see breaker.forget: one of the two sees the other
			o.inFlight.Add(-1)
			return nil, true
		}
	}
	return nil, false
}

// busy reports whether calls hold concurrency slots of b's. Eviction never
// forgets a busy host: the key's next call would find a fresh breaker with
// nothing in flight, and the cap would not hold. Only under MaxConcurrent.
func (b *breaker) busy() bool { return b.more.overload.inFlight.Load() > 0 }

// giveBackSlot frees the concurrency slot of a call admitted but never
// sent (a probe the fleet refused).
func (b *breaker) giveBackSlot(s *shared) {
	if s.policy.MaxConcurrent > 0 {
		b.more.overload.inFlight.Add(-1)
	}
}

// throttles draws whether the throttle refuses a call made with req. While
// the window holds nothing but accepts — a healthy host — it costs two
// atomic loads per window and reads no clock.
func (b *breaker) throttles(s *shared, req *http.Request) bool {
	tc := b.more.overload.throttle
	if !tc.calls.failedWithin(tc.calls.newest.Load()) {
		return false // nothing but accepts: p is 0 for Throttle ≥ 1
	}
	index := s.bucket(s.clock())
	p := b.throttle(s, index)
	if p == 0 {
		return false
	}
	c := Critical
	if controlsSeen.Load() {
		c = controlsOf(req.Context()).criticality
	}
	mix := tc.attempts()
	mix[c+1].record(index, true)
	return s.random() < refusal(mix, index, c, p)
}

// throttle is the share of calls the throttle refuses, over the window
// ending with the bucket of index: the book's probability, capped at
// MaxThrottle, once the window holds MinimumRequests requests (below it,
// one failure of a quiet host would refuse half its next calls).
func (b *breaker) throttle(s *shared, index int64) float64 {
	accepts, others := b.more.overload.throttle.calls.counts(index)
	if accepts+others < s.policy.MinimumRequests {
		return 0
	}
	requests := float64(accepts + others)
	p := (requests - s.policy.Throttle*float64(accepts)) / (requests + 1)
	return min(max(p, 0), s.policy.MaxThrottle)
}

// refusal is the probability of refusing a call of criticality c when the
// throttle refuses a share p of all calls: the refusals go to the lowest
// criticalities first, in proportion to the calls each attempted (see
// Criticality).
func refusal(mix *[3]rateWindow, index int64, c Criticality, p float64) float64 {
	var attempts [3]float64
	total := 0.0
	for i := range mix {
		_, n := mix[i].counts(index)
		attempts[i] = float64(n)
		total += attempts[i]
	}
	refusals := p * total
	for level := range int(c) + 2 {
		if attempts[level] == 0 {
			continue
		}
		q := min(1, refusals/attempts[level])
		if level == int(c)+1 {
			return q
		}
		refusals -= q * attempts[level]
	}
	return p // no call of c in the window: cannot happen, c's was just counted
}

// refuseOverload counts a refusal for overload and returns it; the first
// one while closed tells listeners the host sheds.
func (b *breaker) refuseOverload(s *shared, refusal *OverloadError, tk ticket) *OverloadError {
	o := b.more.overload
	now := s.clock()
	o.shed.Add(1)
	o.lastShed.Store(now)
	if s.policy.Throttle > 0 && !tk.probe {
		o.throttle.calls.record(s.bucket(now), true)
	}
	if !o.shedding.Load() && !tk.probe {
		b.setShedding(s, now, true)
	}
	return refusal
}

// afterCall counts a closed-path call's verdict for the throttle, and tells
// listeners a host stopped shedding once a call ends a full quiet period
// (shedQuiet) after the last refusal for overload.
func (b *breaker) afterCall(s *shared, v verdict) {
	o := b.more.overload
	if o.throttle != nil && v.outcome != Ignore {
		o.throttle.calls.record(s.bucket(v.at), v.outcome == Failure) // Throttle needs Window: v.at was read
	}
	if !o.shedding.Load() {
		return
	}
	if !v.timed {
		v.at = s.clock()
	}
	if v.at-o.lastShed.Load() >= int64(s.policy.shedQuiet()) {
		b.setShedding(s, v.at, false)
	}
}

// setShedding records that a closed circuit starts (on) or stops shedding
// and queues the news for listeners as a closed-to-closed Transition.
func (b *breaker) setShedding(s *shared, now int64, on bool) {
	b.mu.Lock()
	o := b.more.overload
	if o.shedding.Load() != on && b.load().state() == StateClosed && !b.forgotten.Load() {
		b.queueShedding(s, now, on)
	}
	b.unlockAndNotify(s)
}

// queueShedding sets the shedding flag and queues its Transition.
// Requires b.mu held.
func (b *breaker) queueShedding(s *shared, now int64, on bool) {
	b.more.overload.shedding.Store(on)
	now = max(now, b.more.lastAt)
	b.more.lastAt = now
	if len(s.listeners) > 0 {
		ev := Transition{Host: b.host, From: StateClosed, To: StateClosed, At: s.instant(now), Shedding: on}
		b.more.events = append(b.more.events, ev)
	}
}

// overloadStatus fills st's overload figures. Requires b.mu held.
func (b *breaker) overloadStatus(s *shared, st *HostStatus) {
	o := b.more.overload
	st.Total.Shed = o.shed.Load()
	if s.policy.MaxConcurrent > 0 {
		st.InFlight = int(o.inFlight.Load())
	}
	if st.State != StateClosed {
		return
	}
	now := s.clock()
	if s.policy.Throttle > 0 {
		st.Throttle = b.throttle(s, s.bucket(now))
	}
	st.Shedding = st.Total.Shed > 0 && now-o.lastShed.Load() < int64(s.policy.shedQuiet())
}

// hold returns the response the caller gets for a call that holds one of
// o's slots: a copy of resp whose body gives the slot back when it is
// closed, read to its end or fails. The copy is what makes an abandoned
// body collectable: net/http keeps its own *http.Response reachable while
// the body is unread (an HTTP/2 stream holds it, an HTTP/1 chunked body
// points back to it), so nothing hung on that response could ever be
// collected. A caller that drops both the copy and its body lets the
// collector finalize the slot's token, which gives the slot back and
// closes the base's body, as an *os.File closes its descriptor.
//
// Two allocations per call: the copy (with the body in it) and the token,
// which must be a separate object because a finalizer never runs on an
// object that points to itself.
func (o *overload) hold(resp *http.Response) *http.Response {
	tk := &slotToken{o: o, body: resp.Body}
	runtime.SetFinalizer(tk, (*slotToken).abandoned)
	h := &heldResponse{Response: *resp, base: resp, token: tk}
	h.Response.Body = h
	if _, ok := resp.Body.(io.ReadWriteCloser); ok { // a 101 Switching Protocols connection
		h.Response.Body = heldReadWriter{h}
	}
	return &h.Response
}

// cannotHaveBody reports whether resp, answering req, has no body to
// wait for, whatever its Body is: net/http answers a HEAD, a 204, a 304
// or an empty HTTP/2 stream with its own no-body readers, not
// http.NoBody.
func cannotHaveBody(req *http.Request, resp *http.Response) bool {
	switch code := resp.StatusCode; {
	case resp.Body == http.NoBody, req.Method == http.MethodHead:
		return true
	case code == http.StatusNoContent, code == http.StatusNotModified:
		return true
	case code >= 100 && code < 200 && code != http.StatusSwitchingProtocols:
		return true
	}
	return resp.ContentLength == 0 && resp.ProtoMajor == 2 // END_STREAM with the headers
}

// slotToken is one call's slot, given back once: by its body, or by the
// finalizer when the caller dropped the body unclosed.
type slotToken struct {
	o        *overload
	body     io.ReadCloser // the base's body
	released atomic.Bool
}

// release gives the slot back and disarms the finalizer, once.
func (tk *slotToken) release() {
	if tk.released.CompareAndSwap(false, true) {
		tk.o.inFlight.Add(-1)
		runtime.SetFinalizer(tk, nil)
	}
}

// abandoned runs when the caller dropped a body without closing it: the
// slot comes back and the base's body is closed, so its connection or
// stream is freed too. Close may write (an HTTP/2 RST_STREAM) to a peer
// that no longer reads, so it runs off the finalizer goroutine.
func (tk *slotToken) abandoned() {
	if tk.released.CompareAndSwap(false, true) {
		tk.o.inFlight.Add(-1)
		go func() { _ = tk.body.Close() }()
	}
}

// heldResponse is the caller's copy of a response whose call holds a
// slot; it is its own body.
type heldResponse struct {
	http.Response
	base  *http.Response // the base's, where net/http puts trailers it did not announce
	token *slotToken
}

func (h *heldResponse) Read(p []byte) (int, error) {
	n, err := h.token.body.Read(p)
	if err != nil {
		if err == io.EOF && h.Response.Trailer == nil {
			h.Response.Trailer = h.base.Trailer
		}
		h.token.release()
	}
	return n, err
}

func (h *heldResponse) Close() error {
	err := h.token.body.Close()
	h.token.release()
	return err
}

// heldReadWriter keeps a switched protocol's body writable, as net/http's
// callers (httputil.ReverseProxy) expect.
type heldReadWriter struct{ *heldResponse }

func (h heldReadWriter) Write(p []byte) (int, error) {
	return h.token.body.(io.Writer).Write(p)
}
