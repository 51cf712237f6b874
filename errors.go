package httpbreaker

import (
	"errors"
	"strconv"
	"time"
)

// ErrCircuitOpen is the error a refused request matches with [errors.Is]: the
// host's circuit is open, or half-open with every probe slot taken. The error
// actually returned is an [*OpenError], which says which host and until when.
var ErrCircuitOpen = errors.New("httpbreaker: circuit open")

// ErrOverloaded is the error a request refused for overload matches with
// [errors.Is]: adaptive throttling ([Policy.Throttle]) or the concurrency cap
// ([Policy.MaxConcurrent]) refused it while the circuit is closed (or, for
// the cap, while a probe waited). The error actually returned is an
// [*OverloadError]. Unlike [ErrCircuitOpen] it promises no quiet time: the
// next call may pass.
var ErrOverloaded = errors.New("httpbreaker: host overloaded")

// ErrInvalidMethod is the error a request whose method is outside the allowed
// table matches with [errors.Is]. Such a request is never sent and changes no
// breaker. See [DefaultMethods] and [WithMethods].
var ErrInvalidMethod = errors.New("httpbreaker: invalid method")

// OpenError is what a refused request returns (unless a [Fallback] answers
// instead). errors.Is(err, ErrCircuitOpen) holds for it, also through the
// [*url.Error] that [http.Client] wraps around it, and [errors.As] finds it.
//
// One OpenError is built per open episode and shared by every refusal of that
// episode, which keeps refusals free of allocation: treat it as read-only.
type OpenError struct {
	// Host is the breaker key of the refused request, normally its host.
	Host string
	// State is StateOpen, or StateHalfOpen when every probe slot was taken.
	State State
	// RetryAt is the earliest time a probe may be admitted. While half-open
	// it is the instant the circuit turned half-open: a slot may free at any
	// moment. It is zero while Isolated: no time is promised, so check
	// Isolated before computing time.Until(RetryAt).
	RetryAt time.Time
	// Isolated is set for a host isolated with Transport.Isolate (here or,
	// with a Store, by another member): it stays open until ClearState.
	Isolated bool

	openedAt time.Time // when the episode began, for HostStatus
}

// Error describes the refusal.
func (e *OpenError) Error() string {
	msg := "httpbreaker: circuit " + e.State.String() + " for " + strconv.Quote(e.Host)
	if e.State == StateHalfOpen {
		return msg + ", probes busy"
	}
	if e.Isolated || e.RetryAt.IsZero() {
		return msg + ", isolated"
	}
	return msg + ", retry at " + e.RetryAt.Format(time.RFC3339Nano)
}

// Is reports whether target is [ErrCircuitOpen].
func (e *OpenError) Is(target error) bool { return target == ErrCircuitOpen }

// OverloadError is what a request refused for overload returns (unless a
// [Fallback] or the stale cache answers instead). errors.Is(err,
// ErrOverloaded) holds for it, also through [*url.Error]. One value per host
// and cause is shared by every refusal: treat it as read-only.
type OverloadError struct {
	// Host is the breaker key of the refused request.
	Host string
	// Throttled is set for a refusal by adaptive throttling, unset for one
	// by the concurrency cap.
	Throttled bool
	// Adaptive is set for a refusal by the concurrency cap when its limit
	// is adaptive (Policy.AdaptiveConcurrency): the host's latency said it
	// queues.
	Adaptive bool
}

// Error describes the refusal.
func (e *OverloadError) Error() string {
	msg := "httpbreaker: " + strconv.Quote(e.Host) + " overloaded"
	if e.Throttled {
		return msg + ", call throttled"
	}
	if e.Adaptive {
		return msg + ", adaptive concurrency limit reached"
	}
	return msg + ", MaxConcurrent calls in flight"
}

// Is reports whether target is [ErrOverloaded].
func (e *OverloadError) Is(target error) bool { return target == ErrOverloaded }

// methodError is what a request with a method outside the table returns.
type methodError struct{ method string }

func (e *methodError) Error() string {
	return ErrInvalidMethod.Error() + " " + strconv.Quote(e.method)
}

func (e *methodError) Is(target error) bool { return target == ErrInvalidMethod }

// Errors for requests that cannot be keyed; they are returned before anything
// is sent, with the request body closed.
var (
	errNilRequest  = errors.New("httpbreaker: nil request")
	errNilURL      = errors.New("httpbreaker: request has a nil URL")
	errEmptyHost   = errors.New("httpbreaker: request has no host to key a breaker on")
	errNotNew      = errors.New("httpbreaker: Transport used without being made by New")
	errEmptyKey    = errors.New("httpbreaker: Allow or Do needs a key to name the circuit")
	errNilContext  = errors.New("httpbreaker: Allow or Do needs a context (context.Background() for none)")
	errNilCall     = errors.New("httpbreaker: Do needs a call to make")
	errNilResponse = errors.New("httpbreaker: base RoundTripper returned neither a response nor an error")
)
