package httpbreaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

// A refusal for overload is a refusal: the stale cache and the fallback
// answer it.
func TestOverloadRefusalsGoThroughStaleAndFallback(t *testing.T) {
	clock := newClock()
	base := newScripted()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy),
		httpbreaker.WithStaleIfError(1<<20))
	resp, err := rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
	require.NoError(t, err)
	_, _ = io.ReadAll(resp.Body) // kept once read to the end
	_ = resp.Body.Close()
	primeThrottle(t, rt, base, 0, 20)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	resp, err = rt.RoundTrip(mustRequest(t, http.MethodGet, host+"/"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the kept response")
	assert.NotEmpty(t, resp.Header.Get("Warning"))
	_ = resp.Body.Close()

	var seen error
	fb := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy),
		httpbreaker.WithFallback(func(req *http.Request, err error) (*http.Response, error) {
			seen = err
			return response(req, http.StatusOK, "fallback"), nil
		}))
	primeThrottle(t, fb, base, 1, 20)
	httpbreaker.SetRandom(fb, func() float64 { return 0 })
	code, err := get(t, fb, host+"/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.ErrorIs(t, seen, httpbreaker.ErrOverloaded)
	assert.Equal(t, uint64(1), fb.Status(host).Total.Rejected, "answered by a fallback, still a refusal")
}

func TestSheddingReachesListenersAndLogs(t *testing.T) {
	clock := newClock()
	base := newScripted()
	var mu sync.Mutex
	var events []httpbreaker.Transition
	var changes []string
	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(throttlePolicy),
		httpbreaker.WithOnTransition(func(ev httpbreaker.Transition) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}),
		httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(logger)),
		httpbreaker.WithOnStateChange(func(host string, from, to httpbreaker.State) {
			changes = append(changes, from.String()+"->"+to.String())
		}))
	primeThrottle(t, rt, base, 1, 20)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	clock.At(time.Second)
	for range 3 {
		_, err := get(t, rt, host+"/")
		require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	}
	require.Len(t, events, 1, "one start, however many refusals")
	assert.Equal(t, httpbreaker.Transition{Host: "api.test", From: httpbreaker.StateClosed, To: httpbreaker.StateClosed,
		At: t0.Add(time.Second), Shedding: true}, events[0])
	assert.True(t, rt.Status(host).Shedding)

	// A call within the quiet period changes nothing; one a Window after
	// the last refusal ends it.
	httpbreaker.SetRandom(rt, func() float64 { return 1 })
	base.status.Store(http.StatusOK)
	clock.At(5 * time.Second)
	_, err := get(t, rt, host+"/")
	require.NoError(t, err)
	require.Len(t, events, 1)
	clock.At(11 * time.Second)
	assert.False(t, rt.Status(host).Shedding, "the status reads the clock")
	_, err = get(t, rt, host+"/")
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.Equal(t, httpbreaker.Transition{Host: "api.test", From: httpbreaker.StateClosed, To: httpbreaker.StateClosed,
		At: t0.Add(11 * time.Second), Shedding: false}, events[1])

	// A state change ends shedding, the stop first.
	primeThrottle(t, rt, base, 1, 20)
	httpbreaker.SetRandom(rt, func() float64 { return 0 })
	_, err = get(t, rt, host+"/")
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)
	rt.Isolate(host)
	require.Len(t, events, 5)
	assert.True(t, events[2].Shedding)
	assert.Equal(t, httpbreaker.Transition{Host: "api.test", From: httpbreaker.StateClosed, To: httpbreaker.StateClosed,
		At: t0.Add(11 * time.Second)}, events[3])
	assert.Equal(t, httpbreaker.StateOpen, events[4].To)

	assert.Equal(t, []string{"closed->open"}, changes, "WithOnStateChange hears state changes only")
	assert.Equal(t, []httpbreaker.TransitionCount{{From: httpbreaker.StateClosed, To: httpbreaker.StateOpen, Count: 1}},
		rt.Transitions(), "shedding is not counted as a transition")
	out := logged.String()
	assert.Contains(t, out, `level=WARN msg="httpbreaker: host shedding load" host=api.test shedding=true`)
	assert.Contains(t, out, `level=INFO msg="httpbreaker: host stopped shedding load" host=api.test shedding=false`)
}

// Overload traffic from many goroutines, with every control call racing
// it: every call is counted once, and once every body is closed no slot is
// held.
func TestOverloadUnderConcurrency(t *testing.T) {
	for _, policy := range []httpbreaker.Policy{
		{Window: time.Second, Throttle: 1.2, FailureThreshold: 50, ResetTimeout: time.Second, HalfOpenMaxRequests: 2, MaxConcurrent: 3},
		{Window: time.Second, Throttle: 1.2, FailureThreshold: 50, ResetTimeout: time.Second, HalfOpenMaxRequests: 2,
			AdaptiveConcurrency: true, MaxConcurrent: 8, MinConcurrent: 2},
	} {
		t.Run(fmt.Sprintf("adaptive=%v", policy.AdaptiveConcurrency), func(t *testing.T) { overloadUnderConcurrency(t, policy) })
	}
}

func overloadUnderConcurrency(t *testing.T, policy httpbreaker.Policy) {
	var n atomic.Int64
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch n.Add(1) % 4 {
		case 0:
			return nil, errors.New("reset")
		case 1:
			return response(req, http.StatusServiceUnavailable, "busy"), nil
		}
		return response(req, http.StatusOK, "ok"), nil
	})
	clock := newClock()
	rt := newTransport(t, base, httpbreaker.WithClock(clock.Now), httpbreaker.WithPolicy(policy),
		httpbreaker.WithOnTransition(func(httpbreaker.Transition) {}))
	hosts := []string{"http://a.test/", "http://b.test/", "http://c.test/"}
	const goroutines, perG = 8, 400
	var calls [3]atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // the controls, racing
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			h := hosts[i%len(hosts)]
			switch i % 5 {
			case 0:
				rt.Isolate(h)
			case 1:
				rt.ClearState(h)
			case 2:
				_ = rt.Snapshot()
			case 3:
				clock.At(time.Duration(i) * 100 * time.Millisecond)
			case 4:
				_ = rt.Status(h)
			}
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				h := (g + i) % len(hosts)
				ctx := httpbreaker.WithCriticality(context.Background(), httpbreaker.Criticality(i%3-1))
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hosts[h], nil)
				calls[h].Add(1)
				resp, err := rt.RoundTrip(req)
				if (resp == nil) == (err == nil) {
					t.Errorf("response %v and error %v", resp, err)
				}
				if resp != nil {
					if i%2 == 0 {
						_, _ = io.Copy(io.Discard, resp.Body)
					}
					_ = resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	for i, h := range hosts {
		st := rt.Status(h)
		assert.Zero(t, st.InFlight, h)
		assert.Equal(t, uint64(calls[i].Load()), st.Total.Requests+st.Total.Rejected, "%s: every call counted once", h)
		assert.LessOrEqual(t, st.Total.Shed, st.Total.Rejected, h)
		assert.True(t, st.Limit >= max(policy.MinConcurrent, 1) && st.Limit <= policy.MaxConcurrent, "%s: limit %d", h, st.Limit)
	}
}
