package knee

import "time"

// Workload is one column of the concurrency simulations: open-loop
// arrivals at Load times the host's capacity; with Halved, capacity halves
// from HalvedFrom to HalvedTo; with Mixed, every other call is Sheddable.
type Workload struct {
	Name   string
	Load   float64
	Halved bool
	Mixed  bool
}

// When a halved workload's host serves with half its workers.
const (
	HalvedFrom = time.Second
	HalvedTo   = 3 * time.Second
)

// Workloads are the columns both simulations run, in order.
var Workloads = []Workload{
	{"0.5x", 0.5, false, false}, {"1x", 1, false, false}, {"2x", 2, false, false},
	{"1x, halved 1s-3s", 1, true, false}, {"2x, half Sheddable", 2, false, true},
}

// Host returns a fresh host for w, halving if w says so.
func (w Workload) Host(workers int, service time.Duration, queueLimit int) *Host {
	h := New(workers, service, queueLimit)
	if w.Halved {
		h.HalvedFrom, h.HalvedTo = HalvedFrom, HalvedTo
	}
	return h
}

// Trace is a limiter's limit over time.
type Trace struct {
	At    []time.Duration
	Limit []int
}

// Add records the limit at an instant.
func (tr *Trace) Add(at time.Duration, limit int) {
	tr.At, tr.Limit = append(tr.At, at), append(tr.Limit, limit)
}

// Settled returns how long after from the limit first came within ±25% of
// knee (-1 if it never did before to), and the share of the observations
// from then until to that stayed in that band.
func (tr *Trace) Settled(from, to time.Duration, knee float64) (time.Duration, float64) {
	first := time.Duration(-1)
	in, all := 0, 0
	for i, at := range tr.At {
		if at < from || at >= to {
			continue
		}
		l := float64(tr.Limit[i])
		inBand := l >= 0.75*knee && l <= 1.25*knee
		if first < 0 && inBand {
			first = at - from
		}
		if first >= 0 {
			all++
			if inBand {
				in++
			}
		}
	}
	if all == 0 {
		return -1, 0
	}
	return first, float64(in) / float64(all)
}

// Last is the latest limit recorded, or 0.
func (tr *Trace) Last() int {
	if len(tr.Limit) == 0 {
		return 0
	}
	return tr.Limit[len(tr.Limit)-1]
}
