package httpbreaker

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WithStaleIfError keeps the last good response of each GET, in the spirit
// of RFC 5861's stale-if-error, and serves it while the URL's host is
// refused, fails at the transport, or answers 5xx — the seeds' "last
// successfully fetched menu" as a built-in.
//
// A GET classified Success is kept once the caller has read its body to the
// end (it is captured as the caller reads it, never buffered before), unless
// the request or the response says Cache-Control: no-store or the body
// alone exceeds maxBytes. Bodies take at most maxBytes in all; the least
// recently used go first. A kept response is served, with a Warning: 110
// header and an Age header from the clock, only to requests with the same
// URL and the same Authorization and Cookie values (compared as digests):
// one user's data never reaches another. The failure still counts for the
// breaker, and a 5xx it replaces is drained and closed. A stale response
// comes before the Fallback, which comes before the error. maxBytes < 1
// makes New fail.
func WithStaleIfError(maxBytes int64) Option {
	return func(c *config) error {
		if maxBytes < 1 {
			return fmt.Errorf("httpbreaker: WithStaleIfError(%d): want at least 1 byte", maxBytes)
		}
		c.staleBytes = maxBytes
		return nil
	}
}

// staleCache holds the kept responses, least recently used last.
type staleCache struct {
	max int64

	mu      sync.Mutex
	used    int64                      // bytes of bodies kept; requires mu
	entries map[staleKey]*list.Element // of *staleEntry; requires mu
	lru     list.List                  // front: most recently used; requires mu
}

// staleKey names a kept response: its URL and a digest of the request's
// credentials.
type staleKey struct {
	url   string
	creds [sha256.Size]byte
}

type staleEntry struct {
	key      staleKey
	status   int
	header   http.Header
	body     []byte
	storedAt time.Time
}

func newStaleCache(maxBytes int64) *staleCache {
	return &staleCache{max: maxBytes, entries: make(map[staleKey]*list.Element)}
}

func keyOf(req *http.Request) staleKey {
	h := sha256.New()
	io.WriteString(h, req.Header.Get("Authorization"))
	h.Write([]byte{0})
	io.WriteString(h, req.Header.Get("Cookie"))
	k := staleKey{url: req.URL.String()}
	h.Sum(k.creds[:0])
	return k
}

func isGet(req *http.Request) bool { return req.Method == "" || req.Method == http.MethodGet }

func noStore(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return true
			}
		}
	}
	return false
}

// keep arranges for resp to be kept once its body is read to the end.
func (c *staleCache) keep(req *http.Request, resp *http.Response, now func() time.Time) {
	if !isGet(req) || noStore(req.Header) || noStore(resp.Header) || resp.ContentLength > c.max {
		return
	}
	key, status, header := keyOf(req), resp.StatusCode, resp.Header.Clone()
	resp.Body = &capturingBody{ReadCloser: resp.Body, limit: c.max, done: func(body []byte) {
		c.store(&staleEntry{key: key, status: status, header: header, body: body, storedAt: now()})
	}}
}

func (c *staleCache) store(e *staleEntry) {
	size := int64(len(e.body))
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[e.key]; ok {
		c.drop(old)
	}
	for c.used+size > c.max && c.lru.Len() > 0 {
		c.drop(c.lru.Back())
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.used += size
}

// drop forgets one entry. Requires c.mu held.
func (c *staleCache) drop(el *list.Element) {
	e := c.lru.Remove(el).(*staleEntry)
	delete(c.entries, e.key)
	c.used -= int64(len(e.body))
}

// serve returns the kept response for req, or nil.
func (c *staleCache) serve(req *http.Request, now time.Time) *http.Response {
	if !isGet(req) {
		return nil
	}
	key := keyOf(req)
	c.mu.Lock()
	el, ok := c.entries[key]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	e := el.Value.(*staleEntry)
	header := e.header.Clone()
	header.Add("Warning", `110 - "Response is Stale"`)
	header.Set("Age", strconv.FormatInt(int64(max(now.Sub(e.storedAt), 0)/time.Second), 10))
	return &http.Response{
		Status:        strconv.Itoa(e.status) + " " + http.StatusText(e.status),
		StatusCode:    e.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(e.body)),
		ContentLength: int64(len(e.body)),
		Request:       req,
	}
}

// staleIfError keeps a good GET response, or replaces a failed one with the
// kept response for req: after a transport error that is not the caller's
// own cancellation, or a 5xx.
func (t *Transport) staleIfError(req *http.Request, resp *http.Response, err error, o Outcome) (*http.Response, error) {
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		if stale := t.stale.serve(req, t.s.now()); stale != nil {
			return stale, nil
		}
	case err == nil && resp.StatusCode >= 500:
		if stale := t.stale.serve(req, t.s.now()); stale != nil {
			discard(resp)
			return stale, nil
		}
	case err == nil && o == Success:
		t.stale.keep(req, resp, t.s.now)
	}
	return resp, err
}

// capturingBody copies what the caller reads, up to limit bytes, and hands
// the copy to done when the caller reaches the end.
type capturingBody struct {
	io.ReadCloser
	buf   []byte
	limit int64
	over  bool
	done  func(body []byte)
}

func (b *capturingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.over {
		if int64(len(b.buf)+n) > b.limit {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if errors.Is(err, io.EOF) && !b.over && b.done != nil {
		b.done(b.buf)
		b.done, b.buf = nil, nil
	}
	return n, err
}
