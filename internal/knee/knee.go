// Package knee models a host with a capacity knee, for the concurrency
// simulations: the deterministic one of the root package's tests, on a
// fake clock, and the real-time one in bench/ that also runs failsafe-go's
// adaptive limiter, which reads the wall clock.
package knee

import (
	"net/http"
	"slices"
	"time"
)

// Host has Workers that each serve one call in Service time, first come
// first served: while at most Workers calls are in flight a call takes the
// base latency, beyond that it also waits in the queue, and past
// QueueLimit waiting calls it gets a 503 at once. Between HalvedFrom and
// HalvedTo only half the workers serve; from SlowerFrom on, for good, each
// call takes twice Service (its unloaded latency doubles, and its capacity
// halves; the knee, in calls in flight, stays Workers). It is not safe for
// concurrent use.
type Host struct {
	Workers    int
	Service    time.Duration
	QueueLimit int
	HalvedFrom time.Duration
	HalvedTo   time.Duration
	SlowerFrom time.Duration
	// Latencies are those of the calls it served, in arrival order, and
	// Arrivals when each came.
	Latencies []time.Duration
	Arrivals  []time.Duration

	free   []time.Duration // when each worker is next free
	queued []time.Duration // the start times of calls still waiting
}

// New returns a host that never halves.
func New(workers int, service time.Duration, queueLimit int) *Host {
	return &Host{Workers: workers, Service: service, QueueLimit: queueLimit, HalvedFrom: -1, HalvedTo: -1,
		SlowerFrom: -1, free: make([]time.Duration, workers)}
}

// Answer serves a call arriving at offset at: its status, and how long
// after at the answer comes (0 for a 503). Its latency is recorded.
func (k *Host) Answer(at time.Duration) (int, time.Duration) {
	status, latency := k.Serve(at)
	if status == http.StatusOK {
		k.Latencies, k.Arrivals = append(k.Latencies, latency), append(k.Arrivals, at)
	}
	return status, latency
}

// Serve is Answer for another client's call: its latency is not recorded.
func (k *Host) Serve(at time.Duration) (int, time.Duration) {
	usable := k.free
	if at >= k.HalvedFrom && at < k.HalvedTo {
		usable = k.free[:k.Workers/2]
	}
	k.queued = slices.DeleteFunc(k.queued, func(start time.Duration) bool { return start <= at })
	if len(k.queued) >= k.QueueLimit {
		return http.StatusServiceUnavailable, 0
	}
	next := 0
	for i, f := range usable {
		if f < usable[next] {
			next = i
		}
	}
	service := k.Service
	if k.SlowerFrom >= 0 && at >= k.SlowerFrom {
		service *= 2
	}
	start := max(at, usable[next])
	usable[next] = start + service
	if start > at {
		k.queued = append(k.queued, start)
	}
	return http.StatusOK, start + service - at
}

// Percentile is the p-th percentile (0..1) of latencies, or 0.
func Percentile(latencies []time.Duration, p float64) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
