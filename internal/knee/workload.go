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

// Pool is a column of the closed-loop simulations: Size times the host's
// knee callers, each sending its next call when the last one is answered
// (a pause after a refusal), from t = 0; with SlowerFrom, the host's
// service time doubles for good from then on; with Others, other clients'
// pool of Others times the knee, with no limit, keeps the host queueing
// from t = 0 until OthersUntil (the process starts against a busy host).
type Pool struct {
	Name        string
	Size        float64
	SlowerFrom  time.Duration
	Others      float64
	OthersUntil time.Duration
}

// RefusalPause is how long a pool's caller waits after a refusal.
const RefusalPause = 5 * time.Millisecond

// SlowerAt is when a slowing pool's host doubles its service time, and
// BusyUntil when a busy host's other clients leave.
const (
	SlowerAt  = 2 * time.Second
	BusyUntil = 2 * time.Second
)

// Pools are the closed-loop columns both simulations run, in order.
var Pools = []Pool{
	{Name: "pool 0.5x", Size: 0.5, SlowerFrom: -1}, {Name: "pool 1x", Size: 1, SlowerFrom: -1},
	{Name: "pool 2x", Size: 2, SlowerFrom: -1}, {Name: "pool 5x", Size: 5, SlowerFrom: -1},
	{Name: "pool 2x, 2x slower at 2s", Size: 2, SlowerFrom: SlowerAt},
	{Name: "pool 5x, host busy until 2s", Size: 5, SlowerFrom: -1, Others: 2, OthersUntil: BusyUntil},
}

// Host returns a fresh host for p.
func (p Pool) Host(workers int, service time.Duration, queueLimit int) *Host {
	h := New(workers, service, queueLimit)
	h.SlowerFrom = p.SlowerFrom
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

// Recovered returns, for a limit knocked out of the band ±25% around knee
// by a change at from, how long after from it came back into the band
// (-1 if it did not before to; 0 if it never left), and the share of the
// observations from then until to that stayed in it.
func (tr *Trace) Recovered(from, to time.Duration, knee float64) (time.Duration, float64) {
	for i, at := range tr.At {
		if at < from || at >= to {
			continue
		}
		if l := float64(tr.Limit[i]); l < 0.75*knee || l > 1.25*knee {
			d, share := tr.Settled(at, to, knee)
			if d >= 0 {
				d += at - from
			}
			return d, share
		}
	}
	_, share := tr.Settled(from, to, knee)
	return 0, share
}

// Last is the latest limit recorded, or 0.
func (tr *Trace) Last() int {
	if len(tr.Limit) == 0 {
		return 0
	}
	return tr.Limit[len(tr.Limit)-1]
}
