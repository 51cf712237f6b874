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
	t *httpbreaker.Transport

	state, requests, successes, failures, ignored, rejected, transitions *prometheus.Desc
	shed, throttle, inFlight, limit, shedding, retries, retriesDenied    *prometheus.Desc
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
	return &Collector{
		t:             t,
		state:         desc("state", "Circuit state per host: 0 closed, 1 open, 2 half-open.", "host"),
		requests:      desc("requests_total", "Calls sent to the base transport that returned.", "host"),
		successes:     desc("successes_total", "Calls classified Success.", "host"),
		failures:      desc("failures_total", "Calls classified Failure (slow calls included).", "host"),
		ignored:       desc("ignored_total", "Calls classified Ignore.", "host"),
		rejected:      desc("rejected_total", "Requests refused: circuit open, probes busy, or overload (shed_total).", "host"),
		transitions:   desc("transitions_total", "State changes of every host, by from and to.", "from", "to"),
		shed:          desc("shed_total", "Requests refused for overload (Policy.Throttle or MaxConcurrent), part of rejected_total.", "host"),
		throttle:      desc("throttle", "Share of calls adaptive throttling refuses now (Policy.Throttle).", "host"),
		inFlight:      desc("in_flight", "Calls in flight now, counted under Policy.MaxConcurrent.", "host"),
		limit:         desc("concurrency_limit", "The cap on calls in flight now: MaxConcurrent, or the adaptive limit under Policy.AdaptiveConcurrency; 0 when uncapped.", "host"),
		shedding:      desc("shedding", "1 while a closed circuit refuses calls for overload: up but not healthy.", "host"),
		retries:       desc("retries_total", "Retries Transport.AllowRetry allowed (Policy.RetryBudget).", "host"),
		retriesDenied: desc("retries_denied_total", "Retries Transport.AllowRetry refused: budget spent, circuit refusing, or host shedding.", "host"),
	}, nil
}

// Describe sends the descriptors of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.requests, c.successes, c.failures, c.ignored, c.rejected, c.transitions,
		c.shed, c.throttle, c.inFlight, c.limit, c.shedding, c.retries, c.retriesDenied} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.t.Snapshot() {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(st.State), st.Host)
		for _, m := range []struct {
			desc  *prometheus.Desc
			value uint64
		}{
			{c.requests, st.Total.Requests},
			{c.successes, st.Total.Successes},
			{c.failures, st.Total.Failures},
			{c.ignored, st.Total.Ignored},
			{c.rejected, st.Total.Rejected},
			{c.shed, st.Total.Shed},
			{c.retries, st.Total.Retries},
			{c.retriesDenied, st.Total.RetriesDenied},
		} {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.value), st.Host)
		}
		shedding := 0.0
		if st.Shedding {
			shedding = 1
		}
		ch <- prometheus.MustNewConstMetric(c.throttle, prometheus.GaugeValue, st.Throttle, st.Host)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight), st.Host)
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(st.Limit), st.Host)
		ch <- prometheus.MustNewConstMetric(c.shedding, prometheus.GaugeValue, shedding, st.Host)
	}
	for _, tc := range c.t.Transitions() {
		ch <- prometheus.MustNewConstMetric(c.transitions, prometheus.CounterValue, float64(tc.Count), tc.From.String(), tc.To.String())
	}
}
