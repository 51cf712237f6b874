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
