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
//	httpbreaker.hedges          counter, {attempt}: hedged attempts sent (Policy.HedgeAfter)
//	httpbreaker.hedge.wins      counter, {call}: calls a hedged attempt answered
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
	instruments := make([]metric.Observable, len(hostMetrics), len(hostMetrics)+1)
	var errs []error
	for i, m := range hostMetrics {
		var err error
		instruments[i], err = m.make(meter)
		errs = append(errs, err)
	}
	transitions, err := meter.Int64ObservableCounter("httpbreaker.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("State changes of every host, by from and to."))
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, fmt.Errorf("breakerotel: %w", err)
	}
	observe := func(_ context.Context, o metric.Observer) error {
		for _, st := range t.Snapshot() {
			// A fresh slice per host: c.attrs is shared, and its spare
			// capacity must not be written by two collections at once.
			hostAttrs := append(slices.Clip(c.attrs), attribute.String("server.address", st.Host))
			for i, m := range hostMetrics {
				for _, r := range m.read(&st) {
					attrs := hostAttrs
					if m.by != "" {
						attrs = append(slices.Clip(hostAttrs), attribute.String(m.by, r.of))
					}
					if m.float {
						o.ObserveFloat64(instruments[i].(metric.Float64Observable), r.f, metric.WithAttributes(attrs...))
					} else {
						o.ObserveInt64(instruments[i].(metric.Int64Observable), r.n, metric.WithAttributes(attrs...))
					}
				}
			}
		}
		for _, tc := range t.Transitions() {
			o.ObserveInt64(transitions, int64(tc.Count), metric.WithAttributes(append(slices.Clip(c.attrs),
				attribute.String("httpbreaker.from", tc.From.String()), attribute.String("httpbreaker.to", tc.To.String()))...))
		}
		return nil
	}
	return meter.RegisterCallback(observe, append(instruments, transitions)...)
}

// hostMetric is one per-host instrument, read from a host's
// httpbreaker.HostStatus.
type hostMetric struct {
	name, unit, description string
	counter, float          bool   // a counter (else a gauge); float64 values (else int64)
	by                      string // the attribute that tells read's values apart; "" for one value
	read                    func(st *httpbreaker.HostStatus) []reading
}

// reading is one value of a host's instrument: n, or f for a float one, of
// the attribute value of (none without by).
type reading struct {
	of string
	n  int64
	f  float64
}

// hostMetrics are the per-host instruments, one entry each: a new status
// field costs one entry here.
var hostMetrics = []hostMetric{
	{name: "httpbreaker.circuit.state", unit: "{state}", description: "Circuit state per host: 0 closed, 1 open, 2 half-open.",
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.State)) }},
	{name: "httpbreaker.calls", unit: "{call}", description: "Calls that reached the base transport and returned, by outcome.", counter: true, by: "httpbreaker.outcome",
		read: func(st *httpbreaker.HostStatus) []reading {
			return []reading{{of: "success", n: int64(st.Total.Successes)}, {of: "failure", n: int64(st.Total.Failures)}, {of: "ignore", n: int64(st.Total.Ignored)}}
		}},
	{name: "httpbreaker.rejected", unit: "{request}", description: "Requests refused: circuit open, probes busy, or overload (httpbreaker.shed).", counter: true,
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.Total.Rejected)) }},
	{name: "httpbreaker.shed", unit: "{request}", description: "Requests refused for overload (Policy.Throttle or MaxConcurrent), part of httpbreaker.rejected.", counter: true,
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.Total.Shed)) }},
	{name: "httpbreaker.throttle", unit: "1", description: "Share of calls adaptive throttling refuses now.", float: true,
		read: func(st *httpbreaker.HostStatus) []reading { return []reading{{f: st.Throttle}} }},
	{name: "httpbreaker.in_flight", unit: "{call}", description: "Calls in flight now, counted under Policy.MaxConcurrent.",
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.InFlight)) }},
	{name: "httpbreaker.shedding", unit: "1", description: "1 while a closed circuit refuses calls for overload: up but not healthy.",
		read: func(st *httpbreaker.HostStatus) []reading { return count(one(st.Shedding)) }},
	{name: "httpbreaker.concurrency.limit", unit: "{call}", description: "The cap on calls in flight now: MaxConcurrent, or the adaptive limit under Policy.AdaptiveConcurrency; 0 when uncapped.",
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.Limit)) }},
	{name: "httpbreaker.retries", unit: "{retry}", description: "Retries Transport.AllowRetry answered (Policy.RetryBudget), by httpbreaker.retry: allowed or denied.", counter: true, by: "httpbreaker.retry",
		read: func(st *httpbreaker.HostStatus) []reading {
			return []reading{{of: "allowed", n: int64(st.Total.Retries)}, {of: "denied", n: int64(st.Total.RetriesDenied)}}
		}},
	{name: "httpbreaker.hedges", unit: "{attempt}", description: "Hedged attempts sent (Policy.HedgeAfter).", counter: true,
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.Total.Hedges)) }},
	{name: "httpbreaker.hedge.wins", unit: "{call}", description: "Calls a hedged attempt answered rather than the first.", counter: true,
		read: func(st *httpbreaker.HostStatus) []reading { return count(int64(st.Total.HedgeWins)) }},
}

func count(n int64) []reading { return []reading{{n: n}} }

func one(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// make creates the instrument on meter.
func (m hostMetric) make(meter metric.Meter) (metric.Observable, error) {
	unit, description := metric.WithUnit(m.unit), metric.WithDescription(m.description)
	switch {
	case m.float:
		return meter.Float64ObservableGauge(m.name, unit, description)
	case m.counter:
		return meter.Int64ObservableCounter(m.name, unit, description)
	}
	return meter.Int64ObservableGauge(m.name, unit, description)
}
