package httpbreaker

import (
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
)

// concurrencyCap is a host's cap on calls in flight (Policy.MaxConcurrent):
// a call holds a slot from admission until its response body is closed,
// read to its end or fails, or until RoundTrip returns an error; the next
// call over the cap is refused at once. It applies to probes too. Made with
// the host when the policy sets MaxConcurrent.
type concurrencyCap struct {
	// inFlight counts calls holding a slot.
	inFlight atomic.Int64
	// refusal is what its refusals return, built once.
	refusal OverloadError
}

// newConcurrencyCap makes host's cap; adaptive says its limit is the
// adaptive limit's (adaptive.go), which its refusals say.
func newConcurrencyCap(host string, adaptive bool) *concurrencyCap {
	return &concurrencyCap{refusal: OverloadError{Host: host, Adaptive: adaptive}}
}

// acquire takes a slot, or reports false when max calls hold one.
func (c *concurrencyCap) acquire(max int) bool {
	if c.inFlight.Add(1) > int64(max) {
		c.inFlight.Add(-1)
		return false
	}
	return true
}

// release gives a slot back.
func (c *concurrencyCap) release() { c.inFlight.Add(-1) }

// busy reports whether calls hold slots. Eviction never forgets a busy
// host: the key's next call would find a fresh count, and the cap would
// not hold.
func (c *concurrencyCap) busy() bool { return c.inFlight.Load() > 0 }

// status fills the cap's part of a host's status.
func (c *concurrencyCap) status(s *shared, st *HostStatus) {
	st.InFlight, st.Limit = int(c.inFlight.Load()), s.policy.MaxConcurrent
}

// send passes req to base for a call holding one of c's slots: the slot
// is given back when the base returns an error or panics, at once for a
// response that cannot have a body, and otherwise when the body is
// closed, read to its end or fails, or is dropped and collected (see
// hold). A response the Transport swallows (a 5xx replaced
// by a stale one) is closed, which frees it too.
func (c *concurrencyCap) send(req *http.Request, base http.RoundTripper) (*http.Response, error) {
	handed := false
	defer func() {
		if !handed {
			c.release()
		}
	}()
	resp, err := fromBase(base.RoundTrip(req))
	if err != nil || cannotHaveBody(req, resp) {
		return resp, err
	}
	handed = true
	return c.hold(resp), nil
}

// inFlightAnswering is how many calls were in flight as an answer, status
// (0 for none), came to req: those holding slots now, and this one, whose
// slot a body-less answer gave back already (else a limit fully used
// would never look so, and never grow).
func (c *concurrencyCap) inFlightAnswering(req *http.Request, resp *http.Response, status int) int64 {
	n := c.inFlight.Load()
	if status != 0 && cannotHaveBody(req, resp) {
		n++
	}
	return n
}

// hold returns the response the caller gets for a call that holds one of
// c's slots: a copy of resp whose body gives the slot back when it is
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
func (c *concurrencyCap) hold(resp *http.Response) *http.Response {
	tk := &slotToken{c: c, body: resp.Body}
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
	c        *concurrencyCap
	body     io.ReadCloser // the base's body
	released atomic.Bool
}

// release gives the slot back and disarms the finalizer, once.
func (tk *slotToken) release() {
	if tk.released.CompareAndSwap(false, true) {
		tk.c.release()
		runtime.SetFinalizer(tk, nil)
	}
}

// abandoned runs when the caller dropped a body without closing it: the
// slot comes back and the base's body is closed, so its connection or
// stream is freed too. Close may write (an HTTP/2 RST_STREAM) to a peer
// that no longer reads, so it runs off the finalizer goroutine.
func (tk *slotToken) abandoned() {
	if tk.released.CompareAndSwap(false, true) {
		tk.c.release()
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
