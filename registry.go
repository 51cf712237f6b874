package httpbreaker

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// registry holds one breaker per key: at most max of them besides the
// isolated ones. Looking up a tracked key is one atomic load and one lookup
// in a plain, never-mutated map: no lock, no allocation, about twice as
// fast as sync.Map's interface-keyed trie.
//
// New keys go to a small dirty map under mu. Once lookups have missed the
// read map half as many times as it holds keys, read and dirty are merged
// into a new read map: a clone of read (its table copied as is, no
// rehashing), minus the forgotten, plus dirty — about two entries copied
// per miss, amortised, and memory within twice one map's worth.
//
// At capacity, a new key makes room by forgetting a batch of max/64 hosts
// (at least one): the older half of a random sample twice that size
// (found by a quickselect on ages read once), closed hosts first, open and
// half-open ones only when no closed one is left, and never a host whose
// calls hold concurrency slots. A forgotten breaker is marked, never
// deleted from a published map: it stays there, skipped by every lookup,
// until the next merge, which comes at the latest once forgotten breakers
// make half the read map. So admitting a new host at the bound costs O(1)
// amortised, whatever max is (BenchmarkNewHostAtTheBound).
//
// Isolated hosts are never forgotten and do not count against max; their
// flag changes under mu, which eviction decides under.
type registry struct {
	read atomic.Pointer[map[string]*breaker] // published maps are read-only

	// tick counts the keys ever added; a breaker's lastUsed is the tick of
	// its latest request.
	tick atomic.Uint32

	mu sync.Mutex
	// dirty holds the keys added since read was published; requires mu.
	dirty map[string]*breaker
	// misses counts lookups read could not answer since it was published;
	// requires mu.
	misses int
	// evictable counts the tracked breakers that are not isolated: the ones
	// max bounds. Requires mu.
	evictable int
	// forgotten lists the forgotten breakers still in read; requires mu.
	forgotten []*breaker
	// max bounds evictable; 0 means no bound.
	max int
	// slots is set when the policy caps calls in flight: busy hosts are
	// then never forgotten.
	slots bool
	// picked, for tests only, runs between picking victims and forgetting
	// them: where a racing call changes a victim's state.
	picked func(victims []*breaker)
}

// peek returns the breaker of key if the read map has it: never a lock, so
// a miss says nothing.
func (r *registry) peek(key string) *breaker {
	if b := r.readMap()[key]; b != nil && !b.forgotten.Load() {
		return b
	}
	return nil
}

// lookup returns the breaker of key, or nil if key is not tracked.
func (r *registry) lookup(key string) *breaker {
	if b := r.peek(key); b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missed(key)
}

// touch records that a request used b, for eviction's recency order. It
// writes only when the tick has moved since b's last use.
func (r *registry) touch(b *breaker) {
	if now := r.tick.Load(); b.lastUsed.Load() != now {
		b.lastUsed.Store(now)
	}
}

// obtain returns the breaker of key, tracking it, closed, on first use,
// and records the use for eviction's recency order. It returns nil when
// the bound leaves no room: every host eviction could forget has calls in
// flight.
func (r *registry) obtain(key string, s *shared) *breaker {
	if b := r.peek(key); b != nil {
		r.touch(b)
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.missed(key); b != nil {
		r.touch(b)
		return b
	}
	if !r.makeRoom() {
		return nil
	}
	return r.track(key, s)
}

// track adds a new, closed breaker for key, not yet counted against max
// if it is to be isolated. Requires r.mu held.
func (r *registry) track(key string, s *shared) *breaker {
	if r.dirty == nil {
		r.dirty = make(map[string]*breaker)
	}
	b := newHost(key, s) // with a copy of key: the request's URL is not pinned
	b.lastUsed.Store(r.tick.Add(1))
	r.dirty[b.host] = b
	r.evictable++
	return b
}

// isolate opens key's circuit until cleared, tracking key if need be, and
// returns its breaker. Isolated hosts do not count against max, so it never
// evicts. The flag is set under r.mu, so eviction can never forget the host
// between its tracking and its isolation.
func (r *registry) isolate(key string, s *shared) *breaker {
	r.mu.Lock()
	b := r.missed(key)
	if b == nil {
		b = r.track(key, s)
	}
	if !b.isolate(s) {
		r.evictable--
	}
	r.mu.Unlock()
	b.flush(s)
	return b
}

// clear closes b's circuit and ends its isolation, if any. With fleet set,
// only a circuit that is not closed changes (the fleet's closing). A host
// whose isolation ends counts against the bound again: if the bound is
// full, eviction makes room at once — b itself may be the one forgotten,
// which leaves it as ClearState would, closed with fresh counts.
func (r *registry) clear(b *breaker, s *shared, fleet bool) {
	if !fleet {
		b.clearRules(s) // ClearState forgets what the rules learned too
	}
	r.mu.Lock()
	if b.clear(s, fleet) && !b.forgotten.Load() {
		r.evictable++
		r.fit(0) // fails only when every other host holds concurrency slots
	}
	r.mu.Unlock()
	b.flush(s)
}

// all returns every tracked breaker.
func (r *registry) all() []*breaker {
	r.mu.Lock()
	defer r.mu.Unlock()
	read := r.readMap()
	list := make([]*breaker, 0, len(read)+len(r.dirty))
	for _, b := range read {
		if !b.forgotten.Load() {
			list = append(list, b)
		}
	}
	for _, b := range r.dirty {
		list = append(list, b)
	}
	return list
}

func (r *registry) readMap() map[string]*breaker {
	if m := r.read.Load(); m != nil {
		return *m
	}
	return nil
}

// missed answers a lookup the read map could not, and merges dirty into a
// new read map when the misses have paid for it. Requires r.mu held.
func (r *registry) missed(key string) *breaker {
	read := r.readMap()
	if b := read[key]; b != nil && !b.forgotten.Load() { // published meanwhile
		return b
	}
	b := r.dirty[key]
	r.misses++
	if len(r.dirty) > 0 && r.misses > len(read)/2 {
		r.publish()
	}
	return b
}

// publish merges dirty into a new read map, leaving out forgotten
// breakers. Cloning read copies its table as it is, with no rehashing and
// without touching a breaker. Requires r.mu held.
func (r *registry) publish() {
	merged := maps.Clone(r.readMap())
	if merged == nil {
		merged = make(map[string]*breaker, len(r.dirty))
	}
	for _, b := range r.forgotten {
		delete(merged, b.host)
	}
	maps.Copy(merged, r.dirty)
	r.read.Store(&merged)
	r.dirty, r.misses, r.forgotten = nil, 0, r.forgotten[:0]
}

// hostOf returns the breaker of req's key and what the request asks of the
// rules (its criticality, WithoutHedging),
// or why req cannot be sent, or no breaker for a request whose context
// says WithoutBreaker. With track, a new key is tracked (no breaker: no
// room under WithMaxHosts) and the host's use recorded for eviction;
// without, a key not tracked has no breaker and a tracked one is only
// looked at. It reads the request's controls once (context.go).
// RoundTrip tracks; AllowRetry tracks only under RetryBudget.
func (t *Transport) hostOf(req *http.Request, track bool) (*breaker, asks, error) {
	switch {
	case t.base == nil:
		return nil, asks{}, errNotNew
	case req.URL == nil:
		return nil, asks{}, errNilURL
	case !t.methods.allows(req.Method):
		return nil, asks{}, &methodError{method: req.Method}
	}
	var key string
	var a asks
	if controlsSeen.Load() {
		c := controlsOf(req.Context())
		if c.bypass {
			return nil, asks{}, nil
		}
		key, a = c.key, asks{criticality: c.criticality, noHedge: c.noHedge}
	}
	if key == "" && t.keyFunc == nil {
		if host := req.URL.Host; maybeKey(host) {
			if b := t.hosts.peek(host); b != nil {
				if track {
					t.hosts.touch(b)
				}
				return b, a, nil // a tracked host, already in normal form
			}
		}
	}
	if key = t.keyFor(req, key); key == "" {
		return nil, asks{}, errEmptyHost
	}
	if !track {
		return t.hosts.lookup(key), a, nil
	}
	return t.hosts.obtain(key, &t.s), a, nil
}

// keyFor is the key of req, whose context gave it key (WithKey; "" for
// none): that, or WithKeyFunc's, or its host in normal form.
func (t *Transport) keyFor(req *http.Request, key string) string {
	switch {
	case key != "":
		return key
	case t.keyFunc != nil:
		return t.keyFunc(req)
	}
	return requestKey(req.URL)
}

// requestKey is the default breaker key of a request URL: its host,
// lower-cased, with the port kept only when it is explicit and not the
// scheme's default. It allocates only when the host has upper-case letters.
func requestKey(u *url.URL) string {
	host := u.Host
	if i := portColon(host); i >= 0 {
		if port := host[i+1:]; port == "" || port == defaultPort(u.Scheme) {
			host = host[:i]
		}
	} else if host != "" && host[0] != '[' && strings.Count(host, ":") > 1 {
		host = "[" + host + "]" // a bare IPv6 address, as a URL should not have it
	}
	return strings.ToLower(host)
}

// maybeKey reports whether a request URL's host, as it stands, can be its
// own breaker key: whether, if a breaker is known under exactly that string,
// requestKey would give that string too. Keys are lower-case and keep only
// ports that are no scheme's default, so a host that matches one needs no
// normalising — unless it ends in a port requestKey might strip. This lets
// the request path skip requestKey for hosts already tracked.
func maybeKey(host string) bool {
	n := len(host)
	if n == 0 {
		return false
	}
	switch host[n-1] { // most hosts end in a letter: one comparison
	case ':':
		return false
	case '0':
		return n < 3 || host[n-3:] != ":80"
	case '3':
		return n < 4 || host[n-4:] != ":443"
	}
	return true
}

// portColon returns the index of the colon before host's port, or -1: in
// "[v6]:port" the colon right after the bracket; otherwise the only colon
// (several colons without brackets are a bare IPv6 address, no port).
func portColon(host string) int {
	if strings.HasPrefix(host, "[") {
		end := strings.LastIndexByte(host, ']')
		if end < 0 || end+1 >= len(host) || host[end+1] != ':' {
			return -1
		}
		return end + 1
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[:i], ':') >= 0 {
		return -1
	}
	return i
}

func defaultPort(scheme string) string {
	switch {
	case strings.EqualFold(scheme, "http"):
		return "80"
	case strings.EqualFold(scheme, "https"):
		return "443"
	}
	return ""
}

// normalizeHost turns what a caller passes to State, ClearState and the
// like — a host, a host:port or an absolute URL — into a breaker key: an
// absolute URL gets exactly the key of a request to it; a bare host is
// lower-cased, loses any userinfo, path or empty port, and a bare IPv6
// address gains its brackets. Every key is its own normal form:
// normalizeHost(normalizeHost(s)) == normalizeHost(s).
func normalizeHost(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return requestKey(u)
		}
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if s[0] != '[' && strings.Count(s, ":") > 1 {
		s = "[" + s + "]"
	}
	if i := portColon(s); i >= 0 && i == len(s)-1 {
		s = strings.TrimSpace(s[:i])
	}
	return strings.ToLower(s)
}

// withoutDefaultPort returns key without its port when the port is 80 or 443,
// and "" otherwise: a bare "example.com:443" most likely means the breaker of
// https://example.com, whose key is "example.com".
func withoutDefaultPort(key string) string {
	if i := portColon(key); i >= 0 {
		if port := key[i+1:]; port == "80" || port == "443" {
			return key[:i]
		}
	}
	return ""
}
