// Package statuspage serves a small, self-contained page of an
// httpbreaker.Transport's hosts: a line of counts (hosts tracked, open,
// half-open, shedding, isolated), then the hosts in trouble first, their
// states in colour, consecutive failures, totals and time until retry,
// refreshing itself and fitting a laptop's or a phone's screen; and the
// same data as JSON for Accept: application/json, by host. Controls to isolate and clear
// a host appear only with [WithControls], whose authorize function the
// program must supply; they work only by POST, only for requests it
// authorizes, and refuse cross-site requests.
//
//	page, err := statuspage.New(rt, statuspage.WithControls(isAdmin))
//	if err != nil { ... }
//	mux.Handle("/debug/breakers/", http.StripPrefix("/debug/breakers", page))
//
// # Threat model
//
// Isolating or clearing a host changes what every request of the program
// does — and, with a Store, of the whole fleet — so the controls need two
// decisions. Who may reach the page at all is the program's: mount it on
// an internal listener or behind its authentication. Who may act is
// authorize's: it sees each POST (and each page view, to show the buttons
// or not) and answers whether that request may change a circuit; a POST it
// refuses gets 403. Cross-site request forgery is refused besides: a
// browser's request marked cross-site, or with another Origin, gets 403
// whatever authorize says, so an authorize that trusts a cookie is safe
// from other sites' forms.
package statuspage

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/httpbreaker/httpbreaker"
)

// Option configures the page. An option given a value it cannot use makes
// New return an error naming it.
type Option func(*page) error

// WithControls shows buttons to isolate and clear each host and accepts
// them by POST from requests authorize approves (403 otherwise), for hosts
// the Transport tracks only (404 otherwise), so that a form cannot fill it
// with isolations. authorize decides who may change a circuit — for every
// request of the program, or with a Store of the fleet: check the caller's
// credentials there (see the package's threat model). It must not be nil;
// a program that means anyone who reaches the page says so with a function
// returning true.
func WithControls(authorize func(*http.Request) bool) Option {
	return func(p *page) error {
		if authorize == nil {
			return errors.New("statuspage: WithControls(nil): pass the function that decides who may isolate and clear hosts")
		}
		p.authorize = authorize
		return nil
	}
}

// WithRefresh sets how often the page reloads itself: 5s by default, 0 to
// never, else at least a second (the page refreshes in whole seconds).
func WithRefresh(d time.Duration) Option {
	return func(p *page) error {
		if d != 0 && d < time.Second {
			return fmt.Errorf("statuspage: WithRefresh(%v): want 0 (never) or at least 1s", d)
		}
		p.refresh = d
		return nil
	}
}

// WithClock sets the clock that "retry in" is measured with; give it the
// Transport's. time.Now by default.
func WithClock(now func() time.Time) Option {
	return func(p *page) error {
		if now == nil {
			return errors.New("statuspage: WithClock(nil)")
		}
		p.now = now
		return nil
	}
}

// New returns t's status page, or an error naming an option it cannot use
// (a nil one included).
func New(t *httpbreaker.Transport, opts ...Option) (http.Handler, error) {
	if t == nil {
		return nil, errors.New("statuspage: New(nil Transport)")
	}
	p := &page{t: t, refresh: 5 * time.Second, now: time.Now}
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("statuspage: option %d of New is nil", i)
		}
		if err := opt(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

type page struct {
	t         *httpbreaker.Transport
	authorize func(*http.Request) bool // nil: no controls
	refresh   time.Duration
	now       func() time.Time
}

// host is one row, as the page and the JSON show it: the host's status
// as Snapshot reports it (a new field shows in the JSON as it is), and
// when its circuit retries, in seconds from now.
type host struct {
	httpbreaker.HostStatus
	RetryInSeconds *float64 `json:"retry_in_seconds,omitempty"`
}

func (p *page) hosts() []host {
	now := p.now()
	snap := p.t.Snapshot()
	rows := make([]host, len(snap))
	for i, st := range snap {
		rows[i].HostStatus = st
		if !st.RetryAt.IsZero() {
			in := max(st.RetryAt.Sub(now), 0).Seconds()
			rows[i].RetryInSeconds = &in
		}
	}
	return rows
}

// summary is the line above the table: what an operator opening the page
// in an incident looks for first.
type summary struct{ Tracked, Open, HalfOpen, Shedding, Isolated int }

func summarize(rows []host) summary {
	s := summary{Tracked: len(rows)}
	for _, h := range rows {
		switch {
		case h.Isolated:
			s.Isolated++
		case h.State == httpbreaker.StateOpen:
			s.Open++
		case h.State == httpbreaker.StateHalfOpen:
			s.HalfOpen++
		case h.Shedding:
			s.Shedding++
		}
	}
	return s
}

// troubleFirst orders the page's rows for an operator: open circuits
// first, then half-open ones, hosts shedding load, isolated hosts (an
// operator's own doing), and the healthy last; by host within each. The
// JSON keeps Snapshot's order, by host.
func troubleFirst(rows []host) []host {
	rank := func(h host) int {
		switch {
		case h.Isolated:
			return 3
		case h.State == httpbreaker.StateOpen:
			return 0
		case h.State == httpbreaker.StateHalfOpen:
			return 1
		case h.Shedding:
			return 2
		}
		return 4
	}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b host) int { return rank(a) - rank(b) })
	return sorted
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p.show(w, r)
	case http.MethodPost:
		if p.authorize == nil {
			http.Error(w, "statuspage: controls are off", http.StatusMethodNotAllowed)
			return
		}
		p.act(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "statuspage: method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *page) show(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"hosts": p.hosts()})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	rows := p.hosts()
	_ = pageTemplate.Execute(w, map[string]any{
		"Hosts": troubleFirst(rows), "Summary": summarize(rows),
		"Controls": p.authorize != nil && p.authorize(r), "Refresh": int(p.refresh.Seconds()),
	})
}

// act isolates or clears a host, for an authorized, same-origin POST only.
func (p *page) act(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "statuspage: cross-site request refused", http.StatusForbidden)
		return
	}
	if !p.authorize(r) {
		http.Error(w, "statuspage: not authorized to change circuits", http.StatusForbidden)
		return
	}
	target := r.PostFormValue("host")
	if target == "" {
		http.Error(w, "statuspage: no host", http.StatusBadRequest)
		return
	}
	if !p.t.Tracked(target) { // a form must not fill the Transport with isolations
		http.Error(w, "statuspage: host not tracked", http.StatusNotFound)
		return
	}
	switch r.PostFormValue("action") {
	case "isolate":
		p.t.Isolate(target)
	case "clear":
		p.t.ClearState(target)
	default:
		http.Error(w, "statuspage: action must be isolate or clear", http.StatusBadRequest)
		return
	}
	back := r.RequestURI // the path the browser used: under http.StripPrefix, r.URL.Path is not it
	if back == "" || !strings.HasPrefix(back, "/") {
		back = r.URL.Path
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// sameOrigin accepts a request that browsers mark as same-origin (or as
// typed by the user), and one whose Origin is this host; it refuses any
// other that carries either header. A request with neither comes from no
// browser (curl, say) and cannot be a cross-site forgery: whether it may
// act is authorize's decision alone.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
