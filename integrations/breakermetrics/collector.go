// Package breakermetrics exports an httpbreaker.Transport's circuits to
// Prometheus. The Collector reads Transport.Snapshot and Transitions when
// scraped and adds nothing to the request path.
//
//	collector, err := breakermetrics.New(rt)
//	if err != nil { ... }
//	prometheus.MustRegister(collector)
//
// Per-host series carry a host label, so their number is bounded by the
// Transport's WithMaxHosts (10000 by default): lower it, or key breakers
// coarsely with WithKeyFunc, if that is too many series for your Prometheus.
package breakermetrics

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/httpbreaker/httpbreaker"
)

// Collector is a [prometheus.Collector] over one Transport.
type Collector struct {
	t           *httpbreaker.Transport
	hosts       []*prometheus.Desc // one per hostMetrics entry, in its order
	transitions *prometheus.Desc
}

// hostMetrics are the per-host series, one line each, read from a host's
// httpbreaker.HostStatus: a new status field costs one line here.
var hostMetrics = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(st *httpbreaker.HostStatus) float64
}{
	{"state", "Circuit state per host: 0 closed, 1 open, 2 half-open.", prometheus.GaugeValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.State) }},
	{"requests_total", "Calls sent to the base transport that returned.", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Requests) }},
	{"successes_total", "Calls classified Success.", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Successes) }},
	{"failures_total", "Calls classified Failure (slow calls included).", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Failures) }},
	{"ignored_total", "Calls classified Ignore.", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Ignored) }},
	{"rejected_total", "Requests refused: circuit open, probes busy, or overload (shed_total).", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Rejected) }},
	{"shed_total", "Requests refused for overload (Policy.Throttle or MaxConcurrent), part of rejected_total.", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Shed) }},
	{"retries_total", "Retries Transport.AllowRetry allowed (Policy.RetryBudget).", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Retries) }},
	{"retries_denied_total", "Retries Transport.AllowRetry refused: budget spent, circuit refusing, or host shedding.", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.RetriesDenied) }},
	{"hedges_total", "Hedged attempts sent (Policy.HedgeAfter).", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.Hedges) }},
	{"hedge_wins_total", "Calls a hedged attempt answered rather than the first.", prometheus.CounterValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Total.HedgeWins) }},
	{"throttle", "Share of calls adaptive throttling refuses now (Policy.Throttle).", prometheus.GaugeValue, func(st *httpbreaker.HostStatus) float64 { return st.Throttle }},
	{"in_flight", "Calls in flight now, counted under Policy.MaxConcurrent.", prometheus.GaugeValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.InFlight) }},
	{"concurrency_limit", "The cap on calls in flight now: MaxConcurrent, or the adaptive limit under Policy.AdaptiveConcurrency; 0 when uncapped.", prometheus.GaugeValue, func(st *httpbreaker.HostStatus) float64 { return float64(st.Limit) }},
	{"shedding", "1 while a closed circuit refuses calls for overload: up but not healthy.", prometheus.GaugeValue, func(st *httpbreaker.HostStatus) float64 { return one(st.Shedding) }},
}

func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Option configures a Collector. An option given a value it cannot use
// makes New return an error naming it.
type Option func(*options) error

type options struct {
	namespace   string
	constLabels prometheus.Labels
}

// WithNamespace replaces the metric name prefix, "httpbreaker"; it must be
// a valid Prometheus metric name.
func WithNamespace(ns string) Option {
	return func(o *options) error {
		if !validName.MatchString(ns) {
			return fmt.Errorf("breakermetrics: WithNamespace(%q): not a valid metric name", ns)
		}
		o.namespace = ns
		return nil
	}
}

// WithConstLabels adds labels to every series, e.g. to tell several
// Transports apart; their names must be valid label names.
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) error {
		for name := range l {
			if !validLabel.MatchString(name) || strings.HasPrefix(name, "__") {
				return fmt.Errorf("breakermetrics: WithConstLabels: %q is not a valid label name", name)
			}
		}
		o.constLabels = l
		return nil
	}
}

// validName and validLabel are Prometheus's classic rules for metric and
// label names.
var (
	validName  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	validLabel = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// New returns a Collector for t, or an error naming an option it cannot
// use (a nil one included).
func New(t *httpbreaker.Transport, opts ...Option) (*Collector, error) {
	if t == nil {
		return nil, errors.New("breakermetrics: New(nil Transport)")
	}
	o := options{namespace: "httpbreaker"}
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("breakermetrics: option %d of New is nil", i)
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "", name), help, labels, o.constLabels)
	}
	col := &Collector{t: t, transitions: desc("transitions_total", "State changes of every host, by from and to.", "from", "to")}
	for _, m := range hostMetrics {
		col.hosts = append(col.hosts, desc(m.name, m.help, "host"))
	}
	return col, nil
}

// Describe sends the descriptors of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.hosts {
		ch <- d
	}
	ch <- c.transitions
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.t.Snapshot() {
		for i, m := range hostMetrics {
			ch <- prometheus.MustNewConstMetric(c.hosts[i], m.kind, m.value(&st), st.Host)
		}
	}
	for _, tc := range c.t.Transitions() {
		ch <- prometheus.MustNewConstMetric(c.transitions, prometheus.CounterValue, float64(tc.Count), tc.From.String(), tc.To.String())
	}
}
