package httpbreaker_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/httpbreaker/httpbreaker"
)

// The concurrency simulation: a host with a capacity knee, and the caps a
// client can put in front of it, on the same traffic. It is the bench the
// adaptive limit (#26) will be chosen on; today its contenders are no cap
// and static caps, and it shows why a static number is a guess: the cap
// that keeps latency near the base at one load refuses good calls at
// another, and none follows a host whose capacity changes.

// knee is a host with workers that each serve one call in service time,
// first come first served: while at most workers calls are in flight a
// call takes the base latency, beyond that it also waits in the queue,
// and past queueLimit waiting calls it gets a 503 at once. Between
// halvedFrom and halvedTo only half the workers serve.
type knee struct {
	workers    int
	service    time.Duration
	queueLimit int
	halvedFrom time.Duration
	halvedTo   time.Duration
	free       []time.Duration // when each worker is next free
	queued     []time.Duration // the start times of calls still waiting
	latencies  []time.Duration // of the calls it served
}

func newKnee(workers int, service time.Duration, queueLimit int) *knee {
	return &knee{workers: workers, service: service, queueLimit: queueLimit, halvedFrom: -1, halvedTo: -1,
		free: make([]time.Duration, workers)}
}

func (k *knee) answer(at time.Duration) (int, time.Duration) {
	usable := k.free
	if at >= k.halvedFrom && at < k.halvedTo {
		usable = k.free[:k.workers/2]
	}
	k.queued = slices.DeleteFunc(k.queued, func(start time.Duration) bool { return start <= at })
	if len(k.queued) >= k.queueLimit {
		return http.StatusServiceUnavailable, 0
	}
	next := 0
	for i, f := range usable {
		if f < usable[next] {
			next = i
		}
	}
	start := max(at, usable[next])
	usable[next] = start + k.service
	if start > at {
		k.queued = append(k.queued, start)
	}
	latency := start + k.service - at
	k.latencies = append(k.latencies, latency)
	return http.StatusOK, latency
}

// percentile is the p-th percentile (0..1) of the latencies, or 0.
func percentile(latencies []time.Duration, p float64) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// TestConcurrencySimulation prints, for a host of 40 workers serving a call
// in 10ms (capacity 4000 calls/s), what each cap delivers under open-loop
// arrivals at half, full and twice capacity, and while capacity halves:
// goodput against capacity, p50 and p99 latency of calls that got an
// answer, and the share refused. It checks what a static cap must show.
func TestConcurrencySimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short")
	}
	const workers, service = 40, 10 * time.Millisecond
	capacity := float64(workers) / service.Seconds()
	length := 5 * time.Second
	contenders := []struct {
		name   string
		policy httpbreaker.Policy
	}{
		{"no cap", httpbreaker.Policy{}},
		{"MaxConcurrent C/4 = 10", httpbreaker.Policy{MaxConcurrent: workers / 4}},
		{"MaxConcurrent C = 40", httpbreaker.Policy{MaxConcurrent: workers}},
		{"MaxConcurrent 4C = 160", httpbreaker.Policy{MaxConcurrent: 4 * workers}},
	}
	workloads := []struct {
		name   string
		load   float64
		halved bool
	}{
		{"0.5x", 0.5, false}, {"1x", 1, false}, {"2x", 2, false}, {"1x, halved 1s-3s", 1, true},
	}
	type row struct {
		goodput, refused float64
		p50, p99         time.Duration
	}
	results := make([][]row, len(contenders))
	var table strings.Builder
	fmt.Fprintf(&table, "%-24s", "cap")
	for _, w := range workloads {
		fmt.Fprintf(&table, " | %-30s", w.name+": goodput p50 p99 refused")
	}
	table.WriteString("\n")
	for i, c := range contenders {
		fmt.Fprintf(&table, "%-24s", c.name)
		for _, w := range workloads {
			host := newKnee(workers, service, 4*workers)
			if w.halved {
				host.halvedFrom, host.halvedTo = time.Second, 3*time.Second
			}
			// the policy never opens on this host's 503s: only the cap is measured
			policy := c.policy
			policy.FailureThreshold = 1 << 20
			r := simulate(t, policy, host, w.load*capacity, length, 0, length)
			res := row{
				goodput: float64(r.succeeded) / length.Seconds() / capacity,
				refused: float64(r.refusedOverload) / float64(r.calls),
				p50:     percentile(host.latencies, 0.5),
				p99:     percentile(host.latencies, 0.99),
			}
			results[i] = append(results[i], res)
			fmt.Fprintf(&table, " | %7.2f %6v %7v %6.1f%%", res.goodput, res.p50.Round(time.Millisecond),
				res.p99.Round(time.Millisecond), 100*res.refused)
		}
		table.WriteString("\n")
	}
	t.Log(fmt.Sprintf("host: %d workers, %v a call (capacity %.0f calls/s), 503 past %d waiting; %v of Poisson arrivals\n",
		workers, service, capacity, 4*workers, length) + table.String())

	noCap, quarter, atKnee := 0, 1, 2
	const half, full, twice = 0, 1, 2
	assert.Zero(t, results[atKnee][half].refused, "at half load a cap at the knee refuses nothing")
	assert.Greater(t, results[quarter][half].refused, 0.0, "a cap below the knee refuses good calls even at half load")
	assert.LessOrEqual(t, results[atKnee][twice].p99, 2*service, "a cap at the knee keeps queueing out at twice the load")
	assert.Greater(t, results[noCap][twice].p99, 4*service, "without a cap, twice the load queues")
	assert.Greater(t, results[atKnee][twice].goodput, 0.9, "and the cap at the knee still uses the host")
	assert.Greater(t, results[atKnee][full].goodput, 0.8)
}
