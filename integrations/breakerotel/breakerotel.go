// Package breakerotel exports an httpbreaker.Transport's circuits as
// OpenTelemetry metrics. Register adds observable instruments to a
// metric.MeterProvider; they read Transport.Snapshot and Transitions when the
// SDK collects, so the request path pays nothing.
//
//	reg, err := breakerotel.Register(rt, otel.GetMeterProvider())
//	if err != nil { ... }
//	defer reg.Unregister()
//
// Instruments, each per host (attribute server.address, the breaker key):
//
//	httpbreaker.circuit.state   gauge, {state}: 0 closed, 1 open, 2 half-open
//	httpbreaker.calls           counter, {call}: calls that reached the base, by httpbreaker.outcome (success, failure, ignore)
//	httpbreaker.rejected        counter, {request}: requests refused
//	httpbreaker.shed            counter, {request}: of those, refused for overload (Policy.Throttle, MaxConcurrent)
//	httpbreaker.throttle        gauge, 1: share of calls adaptive throttling refuses now
//	httpbreaker.in_flight       gauge, {call}: calls in flight, counted under Policy.MaxConcurrent
//	httpbreaker.concurrency.limit gauge, {call}: the cap on calls in flight now (MaxConcurrent, or the adaptive limit); 0 uncapped
//	httpbreaker.retries         counter, {retry}: retries AllowRetry answered, by httpbreaker.retry (allowed, denied)
//	httpbreaker.shedding        gauge, 1: 1 while a closed circuit refuses calls for overload
//
// and, for the whole Transport, httpbreaker.transitions (counter,
// {transition}) by httpbreaker.from and httpbreaker.to.
//
// Cardinality: the host attribute takes one value per tracked host, so the
// series are bounded by the Transport's WithMaxHosts (10000 by default) plus
// its isolated hosts; lower it, or key circuits coarsely with WithKeyFunc, if
// that is too many for your backend. The module depends on the OpenTelemetry
// metric API only, never on the SDK.
package breakerotel

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/httpbreaker/httpbreaker"
)

// ScopeName is the instrumentation scope of the instruments.
const ScopeName = "github.com/httpbreaker/httpbreaker/integrations/breakerotel"

// Option configures Register. An option given a value it cannot use makes
// Register return an error naming it.
type Option func(*config) error

type config struct {
	attrs []attribute.KeyValue
}

// WithAttributes adds attributes to every observation, e.g. to tell several
// Transports apart.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) error {
		for _, a := range attrs {
			if !a.Valid() {
				return fmt.Errorf("breakerotel: WithAttributes: invalid attribute %q", a.Key)
			}
		}
		c.attrs = append(c.attrs, attrs...)
		return nil
	}
}

// Register adds t's instruments to mp and returns their registration:
// Unregister it when t is retired.
func Register(t *httpbreaker.Transport, mp metric.MeterProvider, opts ...Option) (metric.Registration, error) {
	if t == nil || mp == nil {
		return nil, errors.New("breakerotel: Register needs a Transport and a MeterProvider")
	}
	var c config
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("breakerotel: option %d of Register is nil", i)
		}
		if err := opt(&c); err != nil {
			return nil, err
		}
	}
	meter := mp.Meter(ScopeName)
	state, err1 := meter.Int64ObservableGauge("httpbreaker.circuit.state", metric.WithUnit("{state}"),
		metric.WithDescription("Circuit state per host: 0 closed, 1 open, 2 half-open."))
	calls, err2 := meter.Int64ObservableCounter("httpbreaker.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls that reached the base transport and returned, by outcome."))
	rejected, err3 := meter.Int64ObservableCounter("httpbreaker.rejected", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused: circuit open, probes busy, or overload (httpbreaker.shed)."))
	transitions, err4 := meter.Int64ObservableCounter("httpbreaker.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("State changes of every host, by from and to."))
	shed, err5 := meter.Int64ObservableCounter("httpbreaker.shed", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused for overload (Policy.Throttle or MaxConcurrent), part of httpbreaker.rejected."))
	throttle, err6 := meter.Float64ObservableGauge("httpbreaker.throttle", metric.WithUnit("1"),
		metric.WithDescription("Share of calls adaptive throttling refuses now."))
	inFlight, err7 := meter.Int64ObservableGauge("httpbreaker.in_flight", metric.WithUnit("{call}"),
		metric.WithDescription("Calls in flight now, counted under Policy.MaxConcurrent."))
	shedding, err8 := meter.Int64ObservableGauge("httpbreaker.shedding", metric.WithUnit("1"),
		metric.WithDescription("1 while a closed circuit refuses calls for overload: up but not healthy."))
	limit, err9 := meter.Int64ObservableGauge("httpbreaker.concurrency.limit", metric.WithUnit("{call}"),
		metric.WithDescription("The cap on calls in flight now: MaxConcurrent, or the adaptive limit under Policy.AdaptiveConcurrency; 0 when uncapped."))
	retries, err10 := meter.Int64ObservableCounter("httpbreaker.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Retries Transport.AllowRetry answered (Policy.RetryBudget), by httpbreaker.retry: allowed or denied."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7, err8, err9, err10); err != nil {
		return nil, fmt.Errorf("breakerotel: %w", err)
	}
	observe := func(_ context.Context, o metric.Observer) error {
		for _, st := range t.Snapshot() {
			// A fresh slice per host: c.attrs is shared, and its spare
			// capacity must not be written by two collections at once.
			hostAttrs := append(slices.Clip(c.attrs), attribute.String("server.address", st.Host))
			perHost := metric.WithAttributes(hostAttrs...)
			o.ObserveInt64(state, int64(st.State), perHost)
			for outcome, n := range map[string]uint64{"success": st.Total.Successes, "failure": st.Total.Failures, "ignore": st.Total.Ignored} {
				o.ObserveInt64(calls, int64(n), metric.WithAttributes(append(slices.Clip(hostAttrs), attribute.String("httpbreaker.outcome", outcome))...))
			}
			o.ObserveInt64(rejected, int64(st.Total.Rejected), perHost)
			o.ObserveInt64(shed, int64(st.Total.Shed), perHost)
			o.ObserveFloat64(throttle, st.Throttle, perHost)
			o.ObserveInt64(inFlight, int64(st.InFlight), perHost)
			o.ObserveInt64(limit, int64(st.Limit), perHost)
			for answer, n := range map[string]uint64{"allowed": st.Total.Retries, "denied": st.Total.RetriesDenied} {
				o.ObserveInt64(retries, int64(n), metric.WithAttributes(append(slices.Clip(hostAttrs), attribute.String("httpbreaker.retry", answer))...))
			}
			isShedding := int64(0)
			if st.Shedding {
				isShedding = 1
			}
			o.ObserveInt64(shedding, isShedding, perHost)
		}
		for _, tc := range t.Transitions() {
			o.ObserveInt64(transitions, int64(tc.Count), metric.WithAttributes(append(slices.Clip(c.attrs),
				attribute.String("httpbreaker.from", tc.From.String()), attribute.String("httpbreaker.to", tc.To.String()))...))
		}
		return nil
	}
	return meter.RegisterCallback(observe, state, calls, rejected, transitions, shed, throttle, inFlight, shedding, limit, retries)
}
