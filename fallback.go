package httpbreaker

import (
	"bytes"
	"cmp"
	"container/list"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCallerHeaders are the request headers that identify a caller for
// [WithStaleIfError] unless [WithCallerHeaders] adds more. Besides these,
// any header whose name contains "auth", "token", "key", "session",
// "secret", "cookie" or "tenant" (in any case) identifies a caller too.
var DefaultCallerHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie",
	"X-Api-Key", "X-Auth-Token", "X-Access-Token", "X-Tenant-Id", "X-User-Id",
}

// callerHints are the fragments of a header name that make it identify a
// caller, lower-case.
var callerHints = []string{"auth", "token", "key", "session", "secret", "cookie", "tenant"}

// staleEntryOverhead is what an entry costs besides its strings and body:
// the entry, its list element, its map slot and the header map's buckets,
// roughly. It keeps a flood of empty responses bounded too.
const staleEntryOverhead = 512

// staleCache holds the kept responses, least recently used last.
type staleCache struct {
	max int64
	// callers are the canonical names of the caller-identifying headers.
	callers map[string]bool
	// arrivals numbers responses as they arrive, so the later one wins.
	arrivals atomic.Uint64

	mu      sync.Mutex
	used    int64                      // bytes of entries kept; requires mu
	entries map[staleKey]*list.Element // of *staleEntry; requires mu
	lru     list.List                  // front: most recently used; requires mu
}

// staleKey names a kept response: its URL, its Host and a digest of the
// request's caller-identifying headers.
type staleKey struct {
	url    string
	host   string
	caller [sha256.Size]byte
}

type staleEntry struct {
	key    staleKey
	status int
	header http.Header
	body   []byte
	// vary are the request's values of the headers the response varies on
	// (Accept-Encoding always among them), as the request that fetched it
	// sent them.
	vary []varyValue
	// arrival orders responses for one key; arrivedAt and initialAge give
	// the Age header.
	arrival    uint64
	arrivedAt  time.Time
	initialAge time.Duration
	size       int64
}

type varyValue struct{ name, value string }

func newStaleCache(maxBytes int64, callerHeaders []string) *staleCache {
	c := &staleCache{max: maxBytes, entries: make(map[staleKey]*list.Element), callers: make(map[string]bool)}
	for _, name := range append(slices.Clone(DefaultCallerHeaders), callerHeaders...) {
		c.callers[http.CanonicalHeaderKey(name)] = true
	}
	return c
}

// identifies reports whether the header named name (canonical) identifies a
// caller.
func (c *staleCache) identifies(name string) bool {
	if c.callers[name] {
		return true
	}
	lower := strings.ToLower(name)
	for _, hint := range callerHints {
		if strings.Contains(lower, hint) {
			return true
		}
	}
	return false
}

// keyOf names req's kept response. Every value of every identifying header
// goes into the digest, under whatever spelling of its name the request
// used (req.Header["authorization"] set directly counts as Authorization).
func (c *staleCache) keyOf(req *http.Request) staleKey {
	type field struct{ name, key string }
	var fields []field
	for k := range req.Header {
		if name := http.CanonicalHeaderKey(k); c.identifies(name) {
			fields = append(fields, field{name, k})
		}
	}
	slices.SortFunc(fields, func(a, b field) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.key, b.key))
	})
	h := sha256.New()
	for _, f := range fields {
		io.WriteString(h, f.name)
		h.Write([]byte{0})
		for _, v := range req.Header[f.key] {
			io.WriteString(h, strconv.Itoa(len(v)))
			h.Write([]byte{':'})
			io.WriteString(h, v)
		}
		h.Write([]byte{0})
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	k := staleKey{url: req.URL.String(), host: strings.ToLower(host)}
	h.Sum(k.caller[:0])
	return k
}

func isGet(req *http.Request) bool { return req.Method == "" || req.Method == http.MethodGet }

// hasDirective reports whether any of h's values of the list header name
// holds directive, case-insensitively.
func hasDirective(h http.Header, name, directive string) bool {
	for _, v := range h.Values(name) {
		for _, d := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), directive) {
				return true
			}
		}
	}
	return false
}

// varyNames returns the canonical names the response varies on, always
// with Accept-Encoding, and whether it may be stored at all (not Vary: *).
func varyNames(h http.Header) ([]string, bool) {
	names := []string{"Accept-Encoding"}
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "*":
				return nil, false
			case name != "":
				if name = http.CanonicalHeaderKey(name); !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
		}
	}
	return names, true
}

// headerValue joins every value of name in h, under any spelling of the key.
func headerValue(h http.Header, name string) string {
	var values []string
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			values = append(values, vs...)
		}
	}
	return strings.Join(values, "\x00")
}

// storable reports whether resp to req is a complete representation that
// may be kept (RFC 9111 §3).
func storable(req *http.Request, resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNonAuthoritativeInfo, http.StatusNoContent:
	default:
		return false
	}
	return isGet(req) && req.Header.Get("Range") == "" &&
		!hasDirective(req.Header, "Cache-Control", "no-store") &&
		!hasDirective(resp.Header, "Cache-Control", "no-store")
}

// keep arranges for resp to be kept once its body is read to the end.
func (c *staleCache) keep(req *http.Request, resp *http.Response, now time.Time) {
	if !storable(req, resp) || resp.ContentLength > c.max {
		return
	}
	names, ok := varyNames(resp.Header)
	if !ok {
		return
	}
	e := &staleEntry{key: c.keyOf(req), status: resp.StatusCode, header: resp.Header.Clone(),
		arrival: c.arrivals.Add(1), arrivedAt: now}
	for _, name := range names {
		e.vary = append(e.vary, varyValue{name, headerValue(req.Header, name)})
	}
	if age, err := strconv.ParseInt(strings.TrimSpace(resp.Header.Get("Age")), 10, 64); err == nil && age > 0 &&
		age < int64(1<<63-1)/int64(time.Second) {
		e.initialAge = time.Duration(age) * time.Second
	}
	e.size = e.overhead()
	if e.size > c.max {
		return
	}
	resp.Body = &capturingBody{ReadCloser: resp.Body, limit: c.max - e.size, done: func(body []byte) {
		e.body = body
		e.size += int64(len(body))
		c.store(e)
	}}
}

// overhead is what e holds besides its body, in bytes.
func (e *staleEntry) overhead() int64 {
	n := int64(staleEntryOverhead + len(e.key.url) + len(e.key.host))
	for k, vs := range e.header {
		n += int64(len(k)) + 16
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	for _, v := range e.vary {
		n += int64(len(v.name)+len(v.value)) + 32
	}
	return n
}

func (c *staleCache) store(e *staleEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[e.key]; ok {
		if old.Value.(*staleEntry).arrival > e.arrival {
			return // a later response is kept already
		}
		c.drop(old)
	}
	for c.used+e.size > c.max && c.lru.Len() > 0 {
		c.drop(c.lru.Back())
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.used += e.size
}

// drop forgets one entry. Requires c.mu held.
func (c *staleCache) drop(el *list.Element) {
	e := c.lru.Remove(el).(*staleEntry)
	delete(c.entries, e.key)
	c.used -= e.size
}

// Warnings on a stale response (RFC 7234 §5.5, which stale-if-error's RFC
// 5861 builds on): every stale response says so; one served because a call
// to the host failed says also that the attempt failed, which tells a retry
// layer above that a retry may get a fresh one.
const (
	warnStale  = `110 - "Response is Stale"`
	warnFailed = `111 - "Revalidation Failed"`
)

// serve returns the kept response for req, or nil; failed says it answers
// a call that failed rather than one refused.
func (c *staleCache) serve(req *http.Request, now time.Time, failed bool) *http.Response {
	if !isGet(req) {
		return nil
	}
	key := c.keyOf(req)
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
	for _, v := range e.vary {
		if headerValue(req.Header, v.name) != v.value {
			return nil // another variant
		}
	}
	header := e.header.Clone()
	header.Add("Warning", warnStale)
	if failed {
		header.Add("Warning", warnFailed)
	}
	age := e.initialAge + max(now.Sub(e.arrivedAt), 0)
	header.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
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
	case err != nil && !callerCanceled(req):
		if stale := t.stale.serve(req, t.s.now(), true); stale != nil {
			return stale, nil
		}
	case err == nil && resp.StatusCode >= 500:
		if stale := t.stale.serve(req, t.s.now(), true); stale != nil {
			discard(resp)
			return stale, nil
		}
	case err == nil && o == Success:
		t.stale.keep(req, resp, t.s.now())
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

// Fallback answers a request the breaker refused, in place of err: an
// [*OpenError] when the host's circuit is open (its Isolated field set for
// an isolated host), or an [*OverloadError] when the circuit is closed but
// throttling or the concurrency cap refused the call. Tell them apart with
// [errors.Is] (ErrCircuitOpen, ErrOverloaded) or [errors.As]. It may return
// a response — a cached copy, a default — or an error, its own or err. It
// runs after the request body was closed.
//
// Returning (nil, nil) is taken as returning err; returning both a response
// and an error is taken as the error, and the response body is closed.
type Fallback func(req *http.Request, err error) (*http.Response, error)
