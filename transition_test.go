package httpbreaker_test

import (
	"bytes"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
)

func TestTransitionsCarryTheirInstants(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	status.Store(500)
	var got []httpbreaker.Transition
	var order []string
	rt := newTransport(t, statusFor(&status), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}),
		httpbreaker.WithOnStateChange(func(string, httpbreaker.State, httpbreaker.State) { order = append(order, "state") }),
		httpbreaker.WithOnTransition(httpbreaker.Listeners(
			func(ev httpbreaker.Transition) { got = append(got, ev) },
			func(httpbreaker.Transition) { order = append(order, "transition") },
		)))
	clock.At(time.Second)
	_, _ = get(t, rt, host)
	clock.At(time.Minute + time.Second)
	status.Store(200)
	_, _ = get(t, rt, host)
	rt.Isolate(host)
	clock.At(2 * time.Minute)
	rt.ClearState(host)
	assert.Equal(t, []httpbreaker.Transition{
		{Host: "api.test", From: closed, To: open, At: t0.Add(time.Second), RetryAt: t0.Add(time.Minute + time.Second)},
		{Host: "api.test", From: open, To: halfOpen, At: t0.Add(time.Minute + time.Second)},
		{Host: "api.test", From: halfOpen, To: closed, At: t0.Add(time.Minute + time.Second)},
		{Host: "api.test", From: closed, To: open, At: t0.Add(time.Minute + time.Second)}, // isolated: no RetryAt
		{Host: "api.test", From: open, To: closed, At: t0.Add(2 * time.Minute)},
	}, got)
	assert.Equal(t, []string{"state", "transition"}, order[:2], "listeners in the order given")
	assert.ElementsMatch(t, []httpbreaker.TransitionCount{
		{From: closed, To: open, Count: 2}, {From: open, To: halfOpen, Count: 1},
		{From: halfOpen, To: closed, Count: 1}, {From: open, To: closed, Count: 1},
	}, rt.Transitions())
	_, err := httpbreaker.New(nil, httpbreaker.WithOnTransition(nil))
	assert.ErrorContains(t, err, "WithOnTransition")
}

func TestLogStateChanges(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{} // the record's own time
		}
		return a
	}}))
	clock := newClock()
	rt := newTransport(t, failingHosts("api.test"), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Minute}),
		httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(logger)))
	_, _ = get(t, rt, host)
	rt.ClearState(host)
	rt.Isolate(host)
	want := `level=WARN msg="httpbreaker: circuit open" host=api.test from=closed to=open retry_at=2026-11-23T12:01:00.000Z
level=INFO msg="httpbreaker: circuit closed" host=api.test from=open to=closed
level=WARN msg="httpbreaker: circuit open" host=api.test from=closed to=open isolated=true
`
	require.Equal(t, want, buf.String())
}

func TestLogStateChangesNilMeansTheDefaultLogger(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})))
	defer slog.SetDefault(old)
	rt := newTransport(t, newFakeBase(func(string) int { return 200 }),
		httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(nil)))
	rt.Isolate("api.test")
	assert.Contains(t, buf.String(), `level=WARN msg="httpbreaker: circuit open" host=api.test`)
}

// Listeners hear each host's transitions with instants that never go back,
// though the clock is read before the host's lock.
func TestTransitionInstantsNeverGoBackwards(t *testing.T) {
	clock := newClock()
	clock.At(20 * time.Second)
	var armed atomic.Bool
	reading, racerDone := make(chan struct{}), make(chan struct{})
	now := func() time.Time {
		if armed.CompareAndSwap(true, false) {
			close(reading)
			<-racerDone
			return t0.Add(10 * time.Second) // read before the racer's, returned after
		}
		return clock.Now()
	}
	var heard []httpbreaker.Transition
	var status atomic.Int64
	status.Store(200)
	rt := newTransport(t, statusFor(&status), httpbreaker.WithClock(now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithOnTransition(func(ev httpbreaker.Transition) { heard = append(heard, ev) }))
	_, _ = get(t, rt, host)
	armed.Store(true)
	cleared := make(chan struct{})
	go func() { defer close(cleared); rt.ClearState(host) }()
	<-reading
	status.Store(500)
	_, _ = get(t, rt, host) // opens at 20s
	close(racerDone)
	<-cleared // closes with the 10s reading
	require.Len(t, heard, 2)
	assert.Equal(t, httpbreaker.StateOpen, heard[0].To)
	assert.False(t, heard[1].At.Before(heard[0].At), "closed at %v after opening at %v", heard[1].At, heard[0].At)
}

func TestListenersHearEveryTransitionInOrder(t *testing.T) {
	clock := newClock()
	var status atomic.Int64
	status.Store(500)
	first, second := &transitionLog{}, &transitionLog{}
	rt := newTransport(t, statusFor(&status), httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second}),
		httpbreaker.WithOnStateChange(first.listen), httpbreaker.WithOnStateChange(second.listen))
	_, _ = get(t, rt, host)
	clock.At(time.Second)
	_, _ = get(t, rt, host) // a failing probe
	clock.At(2 * time.Second)
	status.Store(200)
	_, _ = get(t, rt, host)
	want := []string{
		"api.test: closed -> open", "api.test: open -> half-open", "api.test: half-open -> open",
		"api.test: open -> half-open", "api.test: half-open -> closed",
	}
	assert.Equal(t, want, first.get())
	assert.Equal(t, want, second.get())
}

func TestListenerMayCallBackIntoTheTransport(t *testing.T) {
	log := &transitionLog{}
	var rt *httpbreaker.Transport
	rt = newTransport(t, failingHosts("api.test"), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}),
		httpbreaker.WithOnStateChange(func(h string, from, to httpbreaker.State) {
			log.listen(h, from, to)
			assert.Equal(t, to, rt.State(h), "the listener sees the state it is told of")
			if to == httpbreaker.StateOpen {
				rt.ClearState(h) // would deadlock if listeners ran under the lock
			}
		}))
	_, _ = get(t, rt, host)
	assert.Equal(t, []string{"api.test: closed -> open", "api.test: open -> closed"}, log.get())
	assert.True(t, rt.IsClosed(host))
}
