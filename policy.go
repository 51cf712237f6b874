package httpbreaker

import (
	"fmt"
	"time"
)

// Policy sets when a host's circuit opens and how it recovers. Its zero value
// is the default policy; each zero field means the default its comment names.
// A negative value is an error from [New].
type Policy struct {
	// FailureThreshold is the number of consecutive failures that opens the
	// circuit. 0 means 5.
	FailureThreshold int
	// ResetTimeout is how long the circuit stays open before a probe is let
	// through. 0 means 60s.
	ResetTimeout time.Duration
	// HalfOpenMaxRequests is how many probes may be in flight at once while
	// the circuit is half-open. 0 means 1.
	HalfOpenMaxRequests int
	// SuccessThreshold is the number of consecutive probe successes that
	// closes the circuit again. It may exceed HalfOpenMaxRequests: probes
	// then go through in turns. 0 means 1.
	SuccessThreshold int
}

// Policy defaults, applied to zero fields.
const (
	DefaultFailureThreshold    = 5
	DefaultResetTimeout        = 60 * time.Second
	DefaultHalfOpenMaxRequests = 1
	DefaultSuccessThreshold    = 1
)

// maxCount bounds the count fields: the consecutive-failure count lives in
// 30 bits of the breaker's state word.
const maxCount = 1<<30 - 1

// withDefaults returns p with every zero field set to its default.
func (p Policy) withDefaults() Policy {
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultFailureThreshold
	}
	if p.ResetTimeout == 0 {
		p.ResetTimeout = DefaultResetTimeout
	}
	if p.HalfOpenMaxRequests == 0 {
		p.HalfOpenMaxRequests = DefaultHalfOpenMaxRequests
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultSuccessThreshold
	}
	return p
}

// validate reports the first field of p that is out of range, by name.
func (p Policy) validate() error {
	counts := []struct {
		name  string
		value int
	}{
		{"FailureThreshold", p.FailureThreshold},
		{"HalfOpenMaxRequests", p.HalfOpenMaxRequests},
		{"SuccessThreshold", p.SuccessThreshold},
	}
	for _, c := range counts {
		if c.value < 0 || c.value > maxCount {
			return fmt.Errorf("httpbreaker: Policy.%s is %d, want 0 (default) to %d", c.name, c.value, maxCount)
		}
	}
	if p.ResetTimeout < 0 {
		return fmt.Errorf("httpbreaker: Policy.ResetTimeout is %v, want 0 (default) or more", p.ResetTimeout)
	}
	return nil
}
