package httpbreaker_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
