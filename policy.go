package httpbreaker

import (
	"fmt"
	"math"
	"time"
)

// Policy sets when a host's circuit opens and how it recovers. Its zero value
// is the default policy; each zero field means the default its comment names.
// A negative value is an error from [New], and so is a duration under a
// millisecond other than 0.
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

	// Window turns on failure-rate tripping over a sliding window this long,
	// beside the consecutive-failure rule: whichever fires first opens the
	// circuit. The window is 10 buckets of Window/10, its resolution, and
	// starts empty again each time the circuit closes. Throttle and
	// RetryBudget count over it too when it is set, and over
	// DefaultRuleWindow (10s) when it is not: each of them works without
	// rate tripping. 0: off.
	Window time.Duration
	// MinimumRequests is how many calls classified Success or Failure the
	// window must hold before its rate may trip (with Throttle, the
	// requests the throttle's window must hold before it refuses).
	// 0 means 20. Needs Window or Throttle.
	MinimumRequests int
	// FailureRatio is the share of failures in the window,
	// failures / (successes + failures), at or above which the circuit
	// opens. 0 means 0.5; it must lie in [0, 1].
	FailureRatio float64
	// SlowCall makes a call classified Success count as a Failure for every
	// rule, half-open included, if the base transport took longer than this
	// from admission to the response headers. The caller still gets the
	// response. 0: off.
	SlowCall time.Duration
	// MaxResetTimeout lets the open time grow: each failed probe in a row
	// doubles it (ResetTimeout, 2×, 4×, …) up to MaxResetTimeout; closing
	// resets it. 0: it never grows; otherwise at least ResetTimeout.
	MaxResetTimeout time.Duration
	// MaxRetryAfter honours Retry-After: a 429 or 503 response classified
	// Failure with a valid Retry-After (delta-seconds or an HTTP-date) opens
	// the circuit at once, below the threshold too, or reopens it from
	// half-open, until now + min(Retry-After, MaxRetryAfter). A zero, past or
	// unreadable value is just a failure. 0: Retry-After is ignored.
	MaxRetryAfter time.Duration

	// Throttle turns on adaptive client-side throttling while the circuit
	// is closed (Google SRE book, "Handling Overload"): over the last
	// rules' window (Window, or DefaultRuleWindow without it), a call is
	// refused locally with ErrOverloaded with probability
	//
	//	p = max(0, (requests − Throttle·accepts) / (requests + 1))
	//
	// where requests counts the calls classified Success or Failure and
	// the calls refused for overload, and accepts the calls classified
	// Success (Ignore counts in neither), once the window holds
	// MinimumRequests requests. The book suggests 2: the host
	// may reject up to half of what is sent before anything is refused
	// here. [Criticality] decides whose calls are refused; MaxThrottle
	// caps p. Throttling fades as accepts return, with no timeout to wait
	// out. Its window is its own: it outlives an open period (a good probe
	// does not end an overload); ClearState empties it.
	// 0: off; otherwise at least 1. It needs no Window, and sets off no
	// rate tripping. With Window set, since the rate rule opens the circuit
	// at FailureRatio, throttling begins below it only if
	// 1 − 1/Throttle < FailureRatio: New refuses a policy where it never
	// would.
	Throttle float64
	// MaxThrottle caps the throttling probability, so a trickle of calls
	// keeps measuring the host. 0 means 0.9; otherwise in (0, 1]. Needs
	// Throttle.
	MaxThrottle float64
	// MaxConcurrent is how many calls may be in flight to one host at
	// once; the next is refused at once with ErrOverloaded, not queued. A
	// call is in flight from admission until its response body is closed
	// or read to the end (or a read fails), or until RoundTrip returns an
	// error; a body dropped without Close is released when the garbage
	// collector finds it. 0: unlimited, at no cost. Under
	// AdaptiveConcurrency it is the adaptive limit's ceiling, and 0 means
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// AdaptiveConcurrency makes each host's cap on calls in flight follow
	// its latency, from admission to response headers: the limit grows
	// while latency stays near the host's unloaded latency and falls when
	// latency rises, the sign of calls queueing; now and then it steps
	// down to check the unloaded latency it knows (see the adaptive limit
	// in docs/overload.md: open-loop traffic, worker pools, a host that
	// slows down for good or is busy when the process starts). A call over
	// the limit is refused at once with ErrOverloaded, as under
	// MaxConcurrent, which is then the ceiling.
	AdaptiveConcurrency bool
	// MinConcurrent is the adaptive limit's floor. 0 means 1; at most
	// the ceiling. Needs AdaptiveConcurrency.
	MinConcurrent int
	// RetryBudget is how many retries a host may take, as a share of its
	// calls over the rules' window (Window, or DefaultRuleWindow without
	// it) that were not retries themselves (Finagle and Envoy use 0.2):
	// Transport.AllowRetry withdraws them, and says no once they are spent,
	// so retry layers can never multiply an outage. It needs no Window, and
	// sets off no rate tripping. 0: off; otherwise in (0, 1].
	RetryBudget float64
	// MinRetries is how many retries per window are allowed whatever the
	// share, so a quiet host can still retry. 0 means 10. Needs
	// RetryBudget.
	MinRetries int

	// HedgeAfter hedges a host's tail: a replayable request (net/http's
	// rule: GET, HEAD, OPTIONS, TRACE or an Idempotency-Key header, and no
	// body or a GetBody) without response headers after HedgeAfter gets
	// another attempt, and the first answer the classifier calls a success
	// wins; the others are canceled and closed, and only the winner's
	// answer is counted. A hedge is sent only while the circuit is closed
	// and the host sheds nothing, takes a slot of its own under
	// MaxConcurrent and, under RetryBudget, withdraws from the same budget
	// as retries, so a host in trouble gets none (docs/overload.md). Set it
	// near the host's healthy p95. 0: off, at no cost.
	HedgeAfter time.Duration
	// MaxHedges is how many hedged attempts a call may get, each
	// HedgeAfter after the last. 0 means 1; at most 10. Needs HedgeAfter.
	MaxHedges int
}

// Policy defaults, applied to zero fields.
const (
	DefaultFailureThreshold    = 5
	DefaultResetTimeout        = 60 * time.Second
	DefaultHalfOpenMaxRequests = 1
	DefaultSuccessThreshold    = 1
	DefaultMinimumRequests     = 20   // with Window set
	DefaultFailureRatio        = 0.5  // with Window set
	DefaultMaxThrottle         = 0.9  // with Throttle set
	DefaultMaxConcurrent       = 1000 // the ceiling with AdaptiveConcurrency set
	DefaultMinRetries          = 10   // with RetryBudget set
	// DefaultRuleWindow is the window Throttle and RetryBudget count over
	// when Window is 0, and how long a host that refused a call for
	// overload is said to be shedding without a Window.
	DefaultRuleWindow = 10 * time.Second
)

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
	if (p.Window > 0 || p.Throttle > 0) && p.MinimumRequests == 0 {
		p.MinimumRequests = DefaultMinimumRequests
	}
	if p.Window > 0 && p.FailureRatio == 0 {
		p.FailureRatio = DefaultFailureRatio
	}
	if p.Throttle > 0 && p.MaxThrottle == 0 {
		p.MaxThrottle = DefaultMaxThrottle
	}
	if p.AdaptiveConcurrency && p.MaxConcurrent == 0 {
		p.MaxConcurrent = DefaultMaxConcurrent
	}
	if p.AdaptiveConcurrency && p.MinConcurrent == 0 {
		p.MinConcurrent = 1
	}
	if p.RetryBudget > 0 && p.MinRetries == 0 {
		p.MinRetries = DefaultMinRetries
	}
	if p.HedgeAfter > 0 && p.MaxHedges == 0 {
		p.MaxHedges = 1
	}
	return p
}

// maxHedges bounds Policy.MaxHedges: past a few hedges a call is a storm.
const maxHedges = 10

// minDuration is the shortest duration a Policy field may hold: shorter
// ones are below what a clock, a network or a rule can tell apart, and are
// most often a bare number taken for seconds (Window: 5 is 5ns).
const minDuration = time.Millisecond

// validate reports the first field of p that is out of range, by name.
func (p Policy) validate() error {
	counts := []struct {
		name  string
		value int
	}{
		{"FailureThreshold", p.FailureThreshold},
		{"HalfOpenMaxRequests", p.HalfOpenMaxRequests},
		{"SuccessThreshold", p.SuccessThreshold},
		{"MinimumRequests", p.MinimumRequests},
		{"MaxConcurrent", p.MaxConcurrent},
		{"MinConcurrent", p.MinConcurrent},
		{"MinRetries", p.MinRetries},
	}
	for _, c := range counts {
		if c.value < 0 || c.value > maxCount {
			return fmt.Errorf("httpbreaker: Policy.%s is %d, want 0 (default) to %d", c.name, c.value, maxCount)
		}
	}
	durations := []struct {
		name  string
		value time.Duration
	}{
		{"ResetTimeout", p.ResetTimeout},
		{"Window", p.Window},
		{"SlowCall", p.SlowCall},
		{"MaxResetTimeout", p.MaxResetTimeout},
		{"MaxRetryAfter", p.MaxRetryAfter},
		{"HedgeAfter", p.HedgeAfter},
	}
	for _, d := range durations {
		if d.value < 0 || d.value > 0 && d.value < minDuration {
			return fmt.Errorf("httpbreaker: Policy.%s is %v, want 0 (off or default) or at least %v: "+
				"a duration in nanoseconds (a bare 5 is 5ns) means nothing here", d.name, d.value, minDuration)
		}
	}
	if !(p.FailureRatio >= 0 && p.FailureRatio <= 1) { // NaN fails both
		return fmt.Errorf("httpbreaker: Policy.FailureRatio is %v, want 0 (default) to 1", p.FailureRatio)
	}
	if p.MinimumRequests > 0 && p.Window == 0 && p.Throttle == 0 {
		return fmt.Errorf("httpbreaker: Policy.MinimumRequests is %d but Window and Throttle are 0: set either to use it", p.MinimumRequests)
	}
	if p.FailureRatio > 0 && p.Window == 0 {
		return fmt.Errorf("httpbreaker: Policy.FailureRatio is %v but Window is 0: set Window to use it", p.FailureRatio)
	}
	if err := p.validateThrottle(); err != nil {
		return err
	}
	if p.MinConcurrent > 0 && !p.AdaptiveConcurrency {
		return fmt.Errorf("httpbreaker: Policy.MinConcurrent is %d but AdaptiveConcurrency is off: set it to use MinConcurrent", p.MinConcurrent)
	}
	if ceiling := p.withDefaults().MaxConcurrent; p.MinConcurrent > ceiling {
		return fmt.Errorf("httpbreaker: Policy.MinConcurrent is %d, above the ceiling MaxConcurrent %d", p.MinConcurrent, ceiling)
	}
	switch {
	case !(p.RetryBudget >= 0 && p.RetryBudget <= 1): // NaN fails both
		return fmt.Errorf("httpbreaker: Policy.RetryBudget is %v, want 0 (off) or a share in (0, 1]: 0.2 allows a retry per five calls", p.RetryBudget)
	case p.MinRetries > 0 && p.RetryBudget == 0:
		return fmt.Errorf("httpbreaker: Policy.MinRetries is %d but RetryBudget is 0: set RetryBudget to use it", p.MinRetries)
	}
	switch {
	case p.MaxHedges < 0 || p.MaxHedges > maxHedges:
		return fmt.Errorf("httpbreaker: Policy.MaxHedges is %d, want 0 (default: 1) to %d", p.MaxHedges, maxHedges)
	case p.MaxHedges > 0 && p.HedgeAfter == 0:
		return fmt.Errorf("httpbreaker: Policy.MaxHedges is %d but HedgeAfter is 0: set HedgeAfter to use it", p.MaxHedges)
	}
	if reset := p.withDefaults().ResetTimeout; p.MaxResetTimeout > 0 && p.MaxResetTimeout < reset {
		return fmt.Errorf("httpbreaker: Policy.MaxResetTimeout is %v, below ResetTimeout %v", p.MaxResetTimeout, reset)
	}
	return nil
}

// validateThrottle checks Throttle and MaxThrottle, and that throttling can
// begin before the rate rule opens the circuit.
func (p Policy) validateThrottle() error {
	switch {
	case !(p.Throttle == 0 || p.Throttle >= 1 && !math.IsInf(p.Throttle, 1)):
		return fmt.Errorf("httpbreaker: Policy.Throttle is %v, want 0 (off) or a finite value of at least 1", p.Throttle)
	case !(p.MaxThrottle >= 0 && p.MaxThrottle <= 1):
		return fmt.Errorf("httpbreaker: Policy.MaxThrottle is %v, want 0 (default) or in (0, 1]", p.MaxThrottle)
	case p.MaxThrottle > 0 && p.Throttle == 0:
		return fmt.Errorf("httpbreaker: Policy.MaxThrottle is %v but Throttle is 0: set Throttle to use it", p.MaxThrottle)
	}
	if p.Throttle == 0 || p.Window == 0 { // no rate tripping to begin below
		return nil
	}
	if start, ratio := 1-1/p.Throttle, p.withDefaults().FailureRatio; start >= ratio {
		return fmt.Errorf("httpbreaker: Policy.Throttle %v begins refusing at a failure ratio of %.3g, "+
			"where FailureRatio %v already opens the circuit: lower Throttle or raise FailureRatio", p.Throttle, start, ratio)
	}
	return nil
}

// ruleWindow is the window the throttle and the retry budget count over,
// and how long after its last refusal for overload a host is still said
// to be shedding: Window, or DefaultRuleWindow without one.
func (p Policy) ruleWindow() time.Duration {
	if p.Window > 0 {
		return p.Window
	}
	return DefaultRuleWindow
}

// maxReopens bounds the failed-probe count: doubling ResetTimeout 62 times
// outgrows any Duration, so the open time has long reached its cap.
const maxReopens = 62

// openTimeout is how long the circuit stays open after reopens failed
// probes in a row.
func (p Policy) openTimeout(reopens int) time.Duration {
	d := p.ResetTimeout
	if p.MaxResetTimeout == 0 {
		return d
	}
	for ; reopens > 0 && d < p.MaxResetTimeout; reopens-- {
		if d > math.MaxInt64/2 {
			return p.MaxResetTimeout // doubling would overflow: saturate
		}
		d *= 2
	}
	return min(d, p.MaxResetTimeout)
}
