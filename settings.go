package httpbreaker

import (
	"sync/atomic"
	"time"
)

// ticket is what an admitted call carries to its report: the generation it
// was admitted in, whether it holds a probe slot, and when it was admitted
// (a clock offset, read only for the slow-call rule).
type ticket struct {
	gen   uint32
	probe bool
	start int64
}

// verdict is what the breaker learns from one call. Instants are clock
// offsets (settings.offset).
type verdict struct {
	outcome Outcome // Success, Failure or Ignore, nothing else
	// timed is set when at was read: when the policy reads the clock on
	// every call, or the call failed with a Retry-After.
	timed bool
	// at is when the call returned, if timed.
	at int64
	// until, if not 0, is when a Retry-After asks the circuit to stay open
	// until.
	until int64
}

// settings is what every breaker of a Transport shares.
type settings struct {
	policy    Policy // with defaults applied
	now       func() time.Time
	epoch     time.Time // offsets are measured from here
	listeners []func(Transition)
	// transitions counts every state change of every host, by from and to.
	transitions [3][3]atomic.Uint64
	// timed is set when the policy reads the clock on every call.
	timed bool
	// plain is set when the policy has no timed rule and ignores
	// Retry-After: results then take reportPlain.
	plain bool
}

// offset turns an instant into the int64 the breakers work with: time
// since the Transport was made. Using Sub keeps the monotonic clock reading
// of real instants.
func (s *settings) offset(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// clock reads the clock, as an offset.
func (s *settings) clock() int64 { return s.offset(s.now()) }

// instant turns an offset back into a time.
func (s *settings) instant(off int64) time.Time { return s.epoch.Add(time.Duration(off)) }

// later returns off + d, saturating instead of overflowing.
func later(off int64, d time.Duration) int64 {
	if sum := off + int64(d); sum >= off {
		return sum
	}
	return 1<<63 - 1
}

// bucket is the index of the rate-window bucket that holds offset off.
func (s *settings) bucket(off int64) int64 {
	width := int64(s.policy.Window / windowBuckets)
	if width == 0 {
		width = 1
	}
	if off < 0 {
		return (off - width + 1) / width
	}
	return off / width
}
