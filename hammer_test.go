package httpbreaker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// countingServer is an httptest server that knows how many connections it
// has open and, per Host, the most requests it ever served at once.
type countingServer struct {
	*httptest.Server
	open    atomic.Int64
	mu      sync.Mutex
	now     map[string]int
	maxSeen map[string]int
}

func newCountingServer(handler func(w http.ResponseWriter, r *http.Request)) *countingServer {
	s := &countingServer{now: map[string]int{}, maxSeen: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.now[r.Host]++
		s.maxSeen[r.Host] = max(s.maxSeen[r.Host], s.now[r.Host])
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.now[r.Host]--
			s.mu.Unlock()
		}()
		handler(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			s.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
		}
	}
	s.Start()
	return s
}

func (s *countingServer) addr() string { return strings.TrimPrefix(s.URL, "http://") }

// TestHammer sends ~20k calls from 64 goroutines to 100 hosts backed by
// healthy, flaky, storming, resetting, truncating, refusing and hanging
// servers, with the clock stepping under it, and checks the invariants.
func TestHammer(t *testing.T) {
	if testing.Short() {
		t.Skip("hammer: skipped in -short")
	}
	const (
		goroutines = 64
		hosts      = 100
		perG       = 320
		maxProbes  = 2
	)
	var flakyN atomic.Int64
	ok := newCountingServer(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	flaky := newCountingServer(func(w http.ResponseWriter, _ *http.Request) {
		if flakyN.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	storm := newCountingServer(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(2 * time.Millisecond) // a slow failing server, so that probes overlap if they can
		w.WriteHeader(http.StatusInternalServerError)
	})
	servers := []*countingServer{ok, flaky, storm}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	reset, truncated, hanging := newRawServer(t, resetMidHeaders), newRawServer(t, truncatedBody), newRawServer(t, hang)
	refused := strings.TrimPrefix(strings.TrimSuffix(closedPort(t), "/"), "http://")
	kinds := []string{ok.addr(), flaky.addr(), storm.addr(),
		reset.ln.Addr().String(), truncated.ln.Addr().String(), refused, hanging.ln.Addr().String()}
	kindOf := func(host string) string {
		var i int
		_, _ = fmt.Sscanf(host, "h%d.test", &i)
		return kinds[i%len(kinds)]
	}
	base := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			return (&net.Dialer{}).DialContext(ctx, network, kindOf(host))
		},
		MaxIdleConnsPerHost: 8,
	}
	clock := newClock()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 3, ResetTimeout: time.Second, HalfOpenMaxRequests: maxProbes,
	}))
	url := func(i int) string { return fmt.Sprintf("http://h%d.test/", i) }

	// Storm hosts open before the hammer, so every call that reaches the
	// storm server afterwards is a probe.
	for i := 2; i < hosts; i += len(kinds) {
		for rt.IsClosed(url(i)) {
			_, err := oneResult(t, rt, mustRequest(t, http.MethodGet, url(i)))
			require.NoError(t, err)
		}
	}
	storm.mu.Lock()
	clear(storm.maxSeen)
	storm.mu.Unlock()
	warm := make([]int64, hosts)
	for _, st := range rt.Snapshot() {
		var i int
		_, _ = fmt.Sscanf(st.Host, "h%d.test", &i)
		warm[i] = int64(st.Total.Requests + st.Total.Rejected)
	}

	var calls [hosts]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				if g == 0 && i%8 == 0 {
					clock.At(time.Duration(i/8) * 700 * time.Millisecond)
				}
				h := (g*31 + i*7) % hosts
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond) // for the hanging hosts
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url(h), nil)
				calls[h].Add(1)
				resp, err := rt.RoundTrip(req)
				if (resp == nil) == (err == nil) {
					t.Errorf("host %d: response %v and error %v", h, resp, err)
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				cancel()
			}
		}()
	}
	wg.Wait()

	snap := rt.Snapshot()
	require.Len(t, snap, hosts)
	for _, st := range snap {
		var i int
		_, _ = fmt.Sscanf(st.Host, "h%d.test", &i)
		c := st.Total
		assert.Equal(t, c.Requests, c.Successes+c.Failures+c.Ignored, st.Host)
		assert.Equal(t, uint64(calls[i].Load()+warm[i]), c.Requests+c.Rejected, "%s: every call counted once", st.Host)
	}
	storm.mu.Lock()
	for host, n := range storm.maxSeen {
		assert.LessOrEqual(t, n, maxProbes, "%s: probes at once", host)
	}
	storm.mu.Unlock()

	rt.CloseIdleConnections()
	for _, s := range servers {
		assert.Eventually(t, func() bool { return s.open.Load() == 0 }, 5*time.Second, time.Millisecond,
			"the server still sees open connections")
	}
}
