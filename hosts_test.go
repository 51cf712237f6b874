package httpbreaker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

func hostURL(i int) string { return fmt.Sprintf("http://h%d.test/", i) }

func hosts(rt *httpbreaker.Transport) []string {
	var names []string
	for _, st := range rt.Snapshot() {
		names = append(names, st.Host)
	}
	return names
}

func TestMaxHostsForgetsTheLeastRecentlyUsedClosedHost(t *testing.T) {
	rt := newTransport(t, failingHosts("h1.test"), httpbreaker.WithMaxHosts(4),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	for i := range 4 {
		_, _ = get(t, rt, hostURL(i)) // h1 fails: open
	}
	_, _ = get(t, rt, hostURL(0))
	_, _ = get(t, rt, hostURL(3)) // h2 is now the least recently used closed host
	_, _ = get(t, rt, hostURL(4))
	assert.Equal(t, []string{"h0.test", "h1.test", "h3.test", "h4.test"}, hosts(rt))

	_, _ = get(t, rt, hostURL(3)) // recency is counted in new hosts: h3 is now newer than h0
	_, _ = get(t, rt, hostURL(5)) // h0 goes; open h1 stays
	assert.Equal(t, []string{"h1.test", "h3.test", "h4.test", "h5.test"}, hosts(rt))
	assert.True(t, rt.IsOpen("h1.test"))
}

func TestMaxHostsForgetsOpenHostsOnlyWhenNoClosedOneIsLeft(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(string) int { return 500 }), httpbreaker.WithMaxHosts(3),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	for i := range 3 {
		_, _ = get(t, rt, hostURL(i)) // all open
	}
	_, _ = get(t, rt, hostURL(3))
	assert.Equal(t, []string{"h1.test", "h2.test", "h3.test"}, hosts(rt), "h0, the oldest open host, goes")
}

// Isolated hosts do not count against MaxHosts: isolation takes effect even
// when every tracked host is isolated, and new hosts are still tracked.
func TestIsolationAlwaysTakesEffectAtTheBound(t *testing.T) {
	up := newFakeBase(func(string) int { return 200 })
	rt := newTransport(t, up, httpbreaker.WithMaxHosts(2))
	for i := range 5 {
		rt.Isolate(hostURL(i))
	}
	for i := range 5 {
		_, err := get(t, rt, hostURL(i))
		require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "h%d", i)
		require.True(t, rt.Status(hostURL(i)).Isolated)
	}
	assert.Zero(t, up.calls.Load())
	for i := 10; i < 20; i++ {
		_, err := get(t, rt, hostURL(i))
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"h0.test", "h1.test", "h18.test", "h19.test", "h2.test", "h3.test", "h4.test"}, hosts(rt),
		"five isolated hosts beyond the bound, and two others")

	rt.ClearState(hostURL(0)) // back among the evictable ones
	_, _ = get(t, rt, hostURL(30))
	assert.Len(t, hosts(rt), 6, "the bound counts h0 again")
}

func TestForgottenHostStartsAfresh(t *testing.T) {
	rt := newTransport(t, failingHosts("h0.test"), httpbreaker.WithMaxHosts(1),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	_, _ = get(t, rt, hostURL(0))
	require.Equal(t, 1, rt.Status("h0.test").ConsecutiveFailures)
	_, _ = get(t, rt, hostURL(1))
	assert.Equal(t, httpbreaker.HostStatus{Host: "h0.test"}, rt.Status("h0.test"), "forgotten")
	_, _ = get(t, rt, hostURL(0))
	st := rt.Status("h0.test")
	assert.Equal(t, 1, st.ConsecutiveFailures, "fresh count: one failure, not two")
	assert.Equal(t, uint64(1), st.Total.Requests)
}

func TestMaxHostsHoldsUnderConcurrentNewHosts(t *testing.T) {
	const limit = 50
	rt := newTransport(t, failingHosts(), httpbreaker.WithMaxHosts(limit))
	var over atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_, _ = get(t, rt, hostURL(g*1000+i))
				if i%50 == 0 && len(rt.Snapshot()) > limit {
					over.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, over.Load())
	assert.LessOrEqual(t, len(rt.Snapshot()), limit)
	assert.Greater(t, len(rt.Snapshot()), limit/2)
}

// The bound holds at every instant while hosts trip and eviction races
// the calls that change its victims' state: every Snapshot, taken
// concurrently, lists at most the bound of hosts not isolated.
func TestMaxHostsHoldsWhileVictimsTrip(t *testing.T) {
	const limit, workers = 8, 16
	base := newFakeBase(func(h string) int {
		var n int
		_, _ = fmt.Sscanf(h, "h%d.test", &n)
		if n%3 == 0 {
			return http.StatusInternalServerError // a third of the hosts fail, and open
		}
		return http.StatusOK
	})
	rt := newTransport(t, base, httpbreaker.WithMaxHosts(limit),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	var over atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := 0
			for _, st := range rt.Snapshot() {
				if !st.Isolated {
					n++
				}
			}
			if n > limit {
				over.Add(1)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				host := hostURL(g*10_000 + i/2) // each host twice: the failing ones open
				_, _ = get(t, rt, host)
				_, _ = get(t, rt, hostURL(g*10_000+max(0, i/2-1))) // and an older one again
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watched
	assert.Zero(t, over.Load(), "snapshots over the bound")
	assert.LessOrEqual(t, len(rt.Snapshot()), limit)
}

func TestWithMaxHostsRejectsBadValues(t *testing.T) {
	for _, n := range []int{0, -1} {
		_, err := httpbreaker.New(nil, httpbreaker.WithMaxHosts(n))
		assert.ErrorContains(t, err, "WithMaxHosts")
	}
}

func TestInspectingDoesNotTrack(t *testing.T) {
	rt := newTransport(t, failingHosts())
	rt.State("a.test")
	rt.IsOpen("b.test")
	rt.ClearState("c.test")
	assert.Equal(t, httpbreaker.HostStatus{Host: "d.test"}, rt.Status("https://D.test/x"))
	assert.Empty(t, rt.Snapshot())
}

func TestIsolate(t *testing.T) {
	clock := newClock()
	log := &transitionLog{}
	base := failingHosts()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithOnStateChange(log.listen),
		httpbreaker.WithPolicy(httpbreaker.Policy{ResetTimeout: time.Second}))
	rt.Isolate("https://API.test/") // never seen: tracked
	require.Len(t, rt.Snapshot(), 1)
	for _, at := range []time.Duration{0, time.Second, time.Hour} {
		clock.At(at)
		_, err := get(t, rt, host)
		var open *httpbreaker.OpenError
		require.ErrorAs(t, err, &open, "at %v", at)
		assert.True(t, open.Isolated, "the refusal says it is an isolation")
		assert.True(t, open.RetryAt.IsZero())
		assert.Contains(t, err.Error(), "isolated")
		assert.Equal(t, httpbreaker.StateOpen, rt.State(host), "no probe is ever admitted")
	}
	assert.Zero(t, base.calls.Load())
	st := rt.Status(host)
	assert.True(t, st.Isolated)
	assert.Equal(t, t0, st.OpenedAt)
	assert.True(t, st.RetryAt.IsZero())
	assert.Equal(t, uint64(3), st.Total.Rejected)

	rt.ClearState(host)
	code, err := get(t, rt, host)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.False(t, rt.Status(host).Isolated)
	assert.Equal(t, []string{"api.test: closed -> open", "api.test: open -> closed"}, log.get())

	base.code = func(string) int { return http.StatusInternalServerError }
	for range 5 {
		_, _ = get(t, rt, host)
	}
	_, err = get(t, rt, host)
	var open *httpbreaker.OpenError
	require.ErrorAs(t, err, &open)
	assert.False(t, open.Isolated, "an opening by failures is not an isolation")
	assert.Equal(t, clock.Now().Add(time.Second), open.RetryAt)
}

func TestStatusAndCounts(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	rt := newTransport(t, statusFor(&status), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: time.Minute}),
		httpbreaker.WithClassifier(func(resp *http.Response, err error) httpbreaker.Outcome {
			if err == nil && resp.StatusCode == 404 {
				return httpbreaker.Ignore
			}
			return httpbreaker.DefaultClassifier(resp, err)
		}))
	for _, code := range []int64{200, 200, 404, 500, 500} {
		status.Store(code)
		_, _ = get(t, rt, host)
	}
	_, _ = rt.RoundTrip(mustRequest(t, "PURGE", host)) // counts nowhere
	assert.Equal(t, httpbreaker.HostStatus{
		Host: "api.test", State: httpbreaker.StateClosed, ConsecutiveFailures: 2,
		Total: httpbreaker.Counts{Requests: 5, Successes: 2, Failures: 2, Ignored: 1},
	}, rt.Status("api.test"))

	clock.At(10 * time.Second)
	_, _ = get(t, rt, host) // third failure: open
	_, _ = get(t, rt, host) // refused
	want := httpbreaker.HostStatus{
		Host: "api.test", State: httpbreaker.StateOpen,
		OpenedAt: t0.Add(10 * time.Second), RetryAt: t0.Add(70 * time.Second),
		Total: httpbreaker.Counts{Requests: 6, Successes: 2, Failures: 3, Ignored: 1, Rejected: 1},
	}
	assert.Equal(t, want, rt.Status(host))
	assert.Equal(t, []httpbreaker.HostStatus{want}, rt.Snapshot())

	clock.At(70 * time.Second)
	st := rt.Status(host)
	assert.Equal(t, httpbreaker.StateHalfOpen, st.State)
	assert.Equal(t, t0.Add(10*time.Second), st.OpenedAt)
	assert.True(t, st.RetryAt.IsZero(), "RetryAt only while open")

	rt.ClearState(host)
	st = rt.Status(host)
	assert.Equal(t, httpbreaker.StateClosed, st.State)
	assert.True(t, st.OpenedAt.IsZero())
	assert.Equal(t, want.Total, st.Total, "ClearState keeps the totals")
}

func TestSnapshotIsSortedAndCountsConserved(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(h string) int {
		if h == "h3.test" {
			return 500
		}
		return 200
	}), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				_, _ = get(t, rt, hostURL((g+i)%5))
			}
		}()
	}
	wg.Wait()
	snap := rt.Snapshot()
	require.Len(t, snap, 5)
	var calls uint64
	for i, st := range snap {
		assert.Equal(t, fmt.Sprintf("h%d.test", i), st.Host)
		c := st.Total
		assert.Equal(t, c.Requests, c.Successes+c.Failures+c.Ignored)
		calls += c.Requests + c.Rejected
	}
	assert.Equal(t, uint64(6*300), calls, "every call counted once")
	assert.GreaterOrEqual(t, snap[3].Total.Failures, uint64(2), "h3 opened after two failures")
	assert.Equal(t, httpbreaker.StateOpen, snap[3].State)
}

// Isolate racing the eviction a crawler's churn causes: once Isolate
// returns, the host is isolated and stays so.
func TestIsolationSurvivesEvictionRacingIt(t *testing.T) {
	up := newFakeBase(func(string) int { return 200 })
	rt := newTransport(t, up, httpbreaker.WithMaxHosts(8))
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for g := range 2 {
		churn.Add(1)
		go func() {
			defer churn.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, hostURL(1_000_000*(g+1)+i), nil)
				if resp, err := rt.RoundTrip(req); err == nil {
					_ = resp.Body.Close()
				}
			}
		}()
	}
	for i := range 2000 {
		h := hostURL(i)
		rt.Isolate(h)
		if !rt.Status(h).Isolated || !rt.IsOpen(h) {
			close(stop)
			churn.Wait()
			t.Fatalf("isolation %d of %s lost to eviction", i, h)
		}
	}
	close(stop)
	churn.Wait()
	calls := up.calls.Load()
	for i := range 2000 {
		_, err := get(t, rt, hostURL(i))
		require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	}
	assert.Equal(t, calls, up.calls.Load(), "no isolated host was reached")
}

// A breaker dropped to make room falls silent: a call still in flight on it
// may fail, but nobody hears of an opening of a host that is not tracked.
func TestForgottenBreakerFallsSilent(t *testing.T) {
	g := newGate(500)
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == "h0.test" {
			return g.RoundTrip(req)
		}
		return response(req, 200, "ok"), nil
	})
	var heard transitionLog
	rt := newTransport(t, base, httpbreaker.WithMaxHosts(1), httpbreaker.WithOnStateChange(heard.listen),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = get(t, rt, hostURL(0))
	}()
	<-g.entered
	_, err := get(t, rt, hostURL(1)) // h0 is forgotten
	require.NoError(t, err)
	close(g.release) // h0's call fails on the forgotten breaker
	<-done
	assert.Empty(t, heard.get(), "no transition of a forgotten host")
	assert.Empty(t, rt.Transitions())
	assert.Equal(t, httpbreaker.StateClosed, rt.State("h0.test"))
	assert.Equal(t, []string{"h1.test"}, hosts(rt))
}

// An absolute URL names exactly the circuit a request to it would use; only
// a bare host:443 or host:80 may mean the host without its port.
func TestInspectionByURLNamesTheRequestsCircuit(t *testing.T) {
	rt := newTransport(t, newFakeBase(func(string) int { return 200 }))
	_, _ = get(t, rt, "https://svc.test/")
	_, _ = get(t, rt, "http://svc.test:443/")
	require.Equal(t, []string{"svc.test", "svc.test:443"}, hosts(rt))

	rt.Isolate("http://svc.test:443/")
	assert.True(t, rt.IsOpen("http://svc.test:443/x"))
	assert.True(t, rt.IsClosed("https://svc.test/"), "https://svc.test is another circuit")
	assert.Equal(t, "svc.test:443", rt.Status("http://svc.test:443").Host)
	rt.ClearState("http://svc.test:443")
	assert.True(t, rt.IsClosed("http://svc.test:443"))

	rt.Isolate("https://svc.test")
	assert.True(t, rt.IsOpen("https://svc.test:443/"), "the scheme's default port is the same circuit")
	assert.True(t, rt.IsClosed("http://svc.test:443"))

	rt2 := newTransport(t, newFakeBase(func(string) int { return 200 }))
	_, _ = get(t, rt2, "https://only.test/")
	rt2.Isolate("only.test:443") // a bare host:port may mean https://only.test
	assert.True(t, rt2.IsOpen("https://only.test"))
	assert.Equal(t, httpbreaker.StateClosed, rt2.State("http://only.test:443"), "a URL never does")
}

// An isolation lasts until ClearState, whatever the clock says.
func TestIsolationOutlastsAClockFarAhead(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, newFakeBase(func(string) int { return 200 }), httpbreaker.WithClock(clock.Now))
	rt.Isolate("api.test")
	clock.At(time.Until(time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)))
	assert.Equal(t, httpbreaker.StateOpen, rt.State("api.test"))
	_, err := get(t, rt, host)
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.True(t, rt.Status("api.test").Isolated)
}

// A Snapshot encodes as JSON with one convention — snake_case, states by
// name, no zero times — and decodes back to what it was.
func TestSnapshotJSONRoundTrip(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, failingHosts("down.test"), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}))
	_, _ = get(t, rt, "http://up.test/")
	_, _ = get(t, rt, "http://down.test/")
	rt.Isolate("cut.test")
	snap := rt.Snapshot()
	data, err := json.Marshal(snap)
	require.NoError(t, err)
	assert.Contains(t, string(data), `{"host":"down.test","state":"open","isolated":false,"consecutive_failures":0,"opened_at":"2026-11-23T12:00:00Z","retry_at":"2026-11-23T12:01:00Z","total":{"requests":1,`)
	assert.Contains(t, string(data), `{"host":"up.test","state":"closed","isolated":false,"consecutive_failures":0,"total":`)
	assert.NotContains(t, string(data), "0001-01-01")
	var back []httpbreaker.HostStatus
	require.NoError(t, json.Unmarshal(data, &back))
	for i := range snap { // times come back without their monotonic reading
		snap[i].OpenedAt, snap[i].RetryAt = snap[i].OpenedAt.Round(0), snap[i].RetryAt.Round(0)
	}
	assert.Equal(t, snap, back)
	var st httpbreaker.State
	assert.Error(t, st.UnmarshalText([]byte("ajar")))
	_, err = httpbreaker.State(7).MarshalText()
	assert.Error(t, err)
}

func TestOneBreakerPerHost(t *testing.T) {
	base := failingHosts("down.test", "127.0.0.1:8080")
	rt := newTransport(t, base, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	for range 2 {
		_, _ = get(t, rt, "http://down.test/a")
		_, _ = get(t, rt, "http://127.0.0.1:8080/a")
		_, _ = get(t, rt, "http://up.test/a")
	}
	assert.True(t, rt.IsOpen("down.test"))
	assert.True(t, rt.IsOpen("127.0.0.1:8080"))
	assert.True(t, rt.IsClosed("127.0.0.1"), "another port is another host")
	assert.True(t, rt.IsClosed("up.test"))
	code, err := get(t, rt, "http://up.test/b")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
}

func TestKeyNormalisation(t *testing.T) {
	tests := []struct {
		name     string
		requests []string // all must share one breaker
		names    []string // and State must find it under each of these
		other    []string // hosts that are not it
	}{
		{
			name:     "case and the scheme's default port",
			requests: []string{"https://API.example.com:443/x", "https://api.example.com/y", "http://api.EXAMPLE.com:80/"},
			names:    []string{"api.example.com", "API.example.com", "api.example.com:443", "https://api.example.com/z", "http://api.example.com:80", "user@api.example.com/path"},
			other:    []string{"example.com", "api.example.com:8443", "http://api.example.com:8080"},
		},
		{
			name:     "an explicit non-default port",
			requests: []string{"http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"},
			names:    []string{"127.0.0.1:8080", "http://127.0.0.1:8080/menu"},
			other:    []string{"127.0.0.1", "http://127.0.0.1", "127.0.0.1:80"},
		},
		{
			name:     "a port that is another scheme's default",
			requests: []string{"http://api.example.com:443/"},
			names:    []string{"api.example.com:443", "http://api.example.com:443/"},
			other:    []string{"api.example.com", "https://api.example.com"},
		},
		{
			name:     "IPv6 literals",
			requests: []string{"http://[::1]:8080/", "http://[::1]:8080/x"},
			names:    []string{"[::1]:8080", "http://[::1]:8080"},
			other:    []string{"[::1]", "::1"},
		},
		{
			name:     "IPv6 without a port",
			requests: []string{"https://[2001:DB8::1]/", "https://[2001:db8::1]:443/"},
			names:    []string{"2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newTransport(t, newFakeBase(func(string) int { return 500 }),
				httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: len(tt.requests)}))
			for _, u := range tt.requests {
				_, _ = get(t, rt, u)
			}
			for _, n := range tt.names {
				assert.True(t, rt.IsOpen(n), "State(%q)", n)
			}
			for _, n := range tt.other {
				assert.True(t, rt.IsClosed(n), "State(%q)", n)
			}
		})
	}
}

func TestWithKeyFunc(t *testing.T) {
	base := newFakeBase(func(string) int { return 500 })
	byTenant := func(req *http.Request) string { return req.Header.Get("X-Tenant") }
	rt := newTransport(t, base, httpbreaker.WithKeyFunc(byTenant),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	send := func(url, tenant string) error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if tenant != "" {
			req.Header.Set("X-Tenant", tenant)
		}
		resp, err := rt.RoundTrip(req)
		if resp != nil {
			_ = resp.Body.Close()
		}
		return err
	}
	require.NoError(t, send("http://a.test", "Acme"))
	require.NoError(t, send("http://b.test", "Acme"), "another host, same key")
	assert.True(t, rt.IsOpen("Acme"), "keys are taken exactly as the key func returns them")
	assert.True(t, rt.IsClosed("acme"))
	assert.True(t, rt.IsClosed("a.test"))
	assert.ErrorIs(t, send("http://c.test", "Acme"), httpbreaker.ErrCircuitOpen)
	assert.NoError(t, send("http://a.test", "Globex"))

	calls := base.calls.Load()
	err := send("http://a.test", "")
	require.Error(t, err, "an empty key")
	assert.Contains(t, err.Error(), "no host")
	assert.Equal(t, calls, base.calls.Load(), "nothing sent")
}

// A cleared isolation counts against the bound again. With the bound full
// it made one host too many, until some later admission evicted: Snapshot
// listed five hosts under WithMaxHosts(4), none isolated.
func TestClearingAnIsolationAtAFullBoundMakesRoom(t *testing.T) {
	rt := newTransport(t, failingHosts(), httpbreaker.WithMaxHosts(4))
	for i := range 4 {
		_, _ = get(t, rt, hostURL(i))
	}
	rt.Isolate("iso.test")
	require.Len(t, rt.Snapshot(), 5, "an isolation beyond the bound")
	rt.ClearState("iso.test")
	assert.Len(t, rt.Snapshot(), 4)
	assert.Equal(t, 4, httpbreaker.Evictable(rt))
}

// The bound holds at every instant while isolations and clears storm
// beside traffic that keeps the bound full: one consistent look at the
// registry at a time never finds more hosts than the bound that are not
// isolated (each cleared isolation added one, for good: no new host came
// to evict).
func TestMaxHostsHoldsUnderIsolationsAndClears(t *testing.T) {
	const limit = 6
	rt := newTransport(t, failingHosts(), httpbreaker.WithMaxHosts(limit))
	var over atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the watcher
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if httpbreaker.Evictable(rt) > limit {
				over.Add(1)
			}
		}
	}()
	var workers sync.WaitGroup
	for g := range 4 {
		workers.Add(2)
		go func() { // traffic, to the bound's worth of hosts
			defer workers.Done()
			for i := range 400 {
				_, _ = get(t, rt, hostURL(i%limit))
			}
		}()
		go func() { // operators, on hosts of their own and the traffic's
			defer workers.Done()
			for i := range 400 {
				host := hostURL(100 + g*10 + i%10)
				if i%5 == 0 {
					host = hostURL(i % limit)
				}
				rt.Isolate(host)
				rt.ClearState(host)
			}
		}()
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	assert.Zero(t, over.Load(), "looks over the bound")
	assert.LessOrEqual(t, httpbreaker.Evictable(rt), limit)
}

// Isolate("") names no circuit: it changes nothing, deliberately, and
// says so through Tracked; ClearState("") likewise. Neither panics.
func TestIsolateOfNoHostChangesNothing(t *testing.T) {
	rt := newTransport(t, failingHosts())
	for _, host := range []string{"", "http://", "://"} {
		rt.Isolate(host)
		assert.False(t, rt.Tracked(host), "%q", host)
		rt.ClearState(host)
	}
	assert.Empty(t, rt.Snapshot())
}
