package httpbreaker

import "sync/atomic"

// counters are a host's totals. Requests is not stored: each call that
// reached the base ends as exactly one of the other three, so it is their
// sum, and a snapshot is consistent in itself.
type counters struct {
	successes, failures, ignored, rejected atomic.Uint64
}

func (c *counters) count(o Outcome) {
	switch o {
	case Success:
		c.successes.Add(1)
	case Ignore:
		c.ignored.Add(1)
	default:
		c.failures.Add(1)
	}
}

func (c *counters) snapshot() Counts {
	n := Counts{
		Successes: c.successes.Load(),
		Failures:  c.failures.Load(),
		Ignored:   c.ignored.Load(),
		Rejected:  c.rejected.Load(),
	}
	n.Requests = n.Successes + n.Failures + n.Ignored
	return n
}
