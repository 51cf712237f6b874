package httpbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpbreaker/httpbreaker"
)

// t0 is the instant every fake clock starts at.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock tests set by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At sets the clock to t0 + d.
func (c *fakeClock) At(d time.Duration) {
	c.mu.Lock()
	c.now = t0.Add(d)
	c.mu.Unlock()
}

// Advance moves the clock on by d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// roundTripFunc turns a func into an http.RoundTripper, as net/http's tests do.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// fakeBase answers every request with the status its code func gives for the
// request's host (0 means a transport error), counts the calls that reach it
// and closes request bodies as a real transport does.
type fakeBase struct {
	calls atomic.Int64
	code  func(host string) int
}

var errUpstream = errors.New("upstream: connection reset")

func newFakeBase(code func(host string) int) *fakeBase { return &fakeBase{code: code} }

// statusFor returns a fakeBase that answers every host with *status.
func statusFor(status *atomic.Int64) *fakeBase {
	return newFakeBase(func(string) int { return int(status.Load()) })
}

func (f *fakeBase) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	if req.Body != nil {
		_ = req.Body.Close()
	}
	code := f.code(req.URL.Host)
	if code == 0 {
		return nil, errUpstream
	}
	return response(req, code, http.StatusText(code)), nil
}

func response(req *http.Request, code int, body string) *http.Response {
	return &http.Response{
		StatusCode: code,
		Status:     http.StatusText(code),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// closeRecorder is a body that records whether it was closed.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func newBody(s string) *closeRecorder { return &closeRecorder{Reader: strings.NewReader(s)} }

func (b *closeRecorder) Close() error {
	b.closed.Store(true)
	return nil
}

// newTransport makes a Transport or fails the test.
func newTransport(t testing.TB, base http.RoundTripper, opts ...httpbreaker.Option) *httpbreaker.Transport {
	t.Helper()
	rt, err := httpbreaker.New(base, opts...)
	require.NoError(t, err)
	return rt
}

// get sends a GET to url through rt, closing the body of any response.
func get(t testing.TB, rt http.RoundTripper, url string) (int, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		require.Nil(t, resp, "a response and an error together")
		return 0, err
	}
	require.NotNil(t, resp, "neither a response nor an error")
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// transitionLog records what listeners hear.
type transitionLog struct {
	mu     sync.Mutex
	events []string
}

func (l *transitionLog) listen(host string, from, to httpbreaker.State) {
	l.mu.Lock()
	l.events = append(l.events, host+": "+from.String()+" -> "+to.String())
	l.mu.Unlock()
}

func (l *transitionLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// memStore is an in-process Store that delivers its events synchronously:
// a fleet in one test, without Redis. redisstore's tests cover the real one.
type memStore struct {
	mu       sync.Mutex
	failures map[string]int
	open     map[string]time.Time
	leases   map[string]map[string]bool
	subs     map[int]func(httpbreaker.FleetEvent)
	nextSub  int
	calls    atomic.Int64
	broken   atomic.Bool
	nextID   int
	// alone, when set, never gives the fleet's verdict: every member is
	// short of the quorum.
	alone atomic.Bool
	// reports records every failure report, and acquired counts the leases
	// taken.
	reports  []httpbreaker.FailureReport
	acquired int
	// onAcquire, if set, runs inside AcquireProbe with its context.
	onAcquire func(ctx context.Context)
	// contexts records the context of every call, for their values.
	contexts []context.Context
}

var errStoreDown = errors.New("store down")

func newMemStore() *memStore {
	return &memStore{failures: map[string]int{}, open: map[string]time.Time{}, leases: map[string]map[string]bool{},
		subs: map[int]func(httpbreaker.FleetEvent){}}
}

func (m *memStore) enter(ctx context.Context) error {
	m.calls.Add(1)
	if m.broken.Load() {
		return errStoreDown
	}
	m.mu.Lock()
	m.contexts = append(m.contexts, ctx)
	return nil
}

func (m *memStore) publish(ev httpbreaker.FleetEvent) {
	m.mu.Lock()
	subs := slices.Collect(maps.Values(m.subs))
	m.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}

// Failure counts the fleet's failures as redisstore's WithQuorum(1) does:
// the fleet trips when its run, or the member's own, reaches the threshold.
func (m *memStore) Failure(ctx context.Context, r httpbreaker.FailureReport) (httpbreaker.FleetVerdict, error) {
	if err := m.enter(ctx); err != nil {
		return httpbreaker.FleetVerdict{}, err
	}
	defer m.mu.Unlock()
	m.reports = append(m.reports, r)
	m.failures[r.Host]++
	until, open := m.open[r.Host]
	trip := !m.alone.Load() && (m.failures[r.Host] >= r.Threshold || r.Run >= r.Threshold)
	return httpbreaker.FleetVerdict{Trip: trip, Fleet: httpbreaker.FleetEvent{Host: r.Host, Open: open, Until: until}}, nil
}

func (m *memStore) Success(ctx context.Context, host string) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.failures, host)
	return nil
}

func (m *memStore) Open(ctx context.Context, host string, until time.Time) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	m.open[host] = until
	delete(m.failures, host)
	m.mu.Unlock()
	m.publish(httpbreaker.FleetEvent{Host: host, Open: true, Until: until})
	return nil
}

func (m *memStore) Reset(ctx context.Context, host string) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	delete(m.open, host)
	delete(m.failures, host)
	m.mu.Unlock()
	m.publish(httpbreaker.FleetEvent{Host: host})
	return nil
}

func (m *memStore) AcquireProbe(ctx context.Context, host string, slots int) (string, bool, error) {
	if m.onAcquire != nil {
		m.onAcquire(ctx)
	}
	if err := m.enter(ctx); err != nil {
		return "", false, err
	}
	defer m.mu.Unlock()
	if m.leases[host] == nil {
		m.leases[host] = map[string]bool{}
	}
	if len(m.leases[host]) >= slots {
		return "", false, nil
	}
	m.nextID++
	m.acquired++
	lease := fmt.Sprint(m.nextID)
	m.leases[host][lease] = true
	return lease, true, nil
}

func (m *memStore) ReleaseProbe(ctx context.Context, host, lease string) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.leases[host], lease)
	return nil
}

// Subscribe delivers the openings in force, then every event, until
// unsubscribed.
func (m *memStore) Subscribe(f func(httpbreaker.FleetEvent)) func() {
	m.mu.Lock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = f
	open := maps.Clone(m.open)
	m.mu.Unlock()
	for host, until := range open {
		f(httpbreaker.FleetEvent{Host: host, Open: true, Until: until})
	}
	return func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const host = "http://api.test"

var (
	closed   = httpbreaker.StateClosed
	open     = httpbreaker.StateOpen
	halfOpen = httpbreaker.StateHalfOpen
)

// gate is a base transport whose calls block until released, so a test can
// hold requests in flight.
type gate struct {
	entered  chan struct{}
	release  chan struct{}
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	status   int
}

func newGate(status int) *gate {
	return &gate{entered: make(chan struct{}, 100), release: make(chan struct{}), status: status}
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	n := g.inFlight.Add(1)
	for {
		m := g.maxSeen.Load()
		if n <= m || g.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	g.entered <- struct{}{}
	<-g.release
	g.inFlight.Add(-1)
	return response(req, g.status, "ok"), nil
}
