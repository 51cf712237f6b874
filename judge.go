package httpbreaker

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// judge turns a call's result into the breaker's verdict: the classifier's
// outcome (anything but Success and Ignore is a Failure), then the policy's
// timed rules: slow calls and Retry-After.
func (t *Transport) judge(req *http.Request, tk ticket, resp *http.Response, err error) verdict {
	v := t.timed(tk, t.classifyCall(req, resp, err))
	p := &t.s.policy
	if v.outcome == Failure && p.MaxRetryAfter > 0 && resp != nil &&
		(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if !v.timed {
			v.at, v.timed = t.s.clock(), true
		}
		if until, ok := retryAfter(resp.Header, t.s.instant(v.at)); ok {
			v.until = max(min(t.s.offset(until), later(v.at, p.MaxRetryAfter)), 1) // 0 means none
		}
	}
	return v
}

// timed is the verdict on a call of outcome o (normalised) before
// Retry-After: timed when the policy reads the clock on every call or a rule
// stamped the call's admission, and a success slower than SlowCall failed.
// judge's, and a non-HTTP call's (Allow), whole verdict.
func (t *Transport) timed(tk ticket, o Outcome) verdict {
	v := verdict{outcome: o.normal()}
	if t.s.timed || tk.start != 0 {
		v.at, v.timed = t.s.clock(), true
	}
	if v.outcome == Success && t.s.policy.SlowCall > 0 && v.at-tk.start > int64(t.s.policy.SlowCall) {
		v.outcome = Failure
	}
	return v
}

// retryAfter returns the instant a response's Retry-After header names
// (RFC 9110 §10.2.3: delta-seconds or an HTTP-date), and whether it names a
// usable one: a value that is missing, malformed, zero, negative, past or
// too large to represent is not.
func retryAfter(header http.Header, now time.Time) (time.Time, bool) {
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return time.Time{}, false
	}
	if isDigits(v) {
		const maxSeconds = int64(1<<63-1) / int64(time.Second)
		var secs int64
		for i := 0; i < len(v); i++ {
			secs = secs*10 + int64(v[i]-'0')
			if secs > maxSeconds {
				return time.Time{}, false
			}
		}
		if secs == 0 {
			return time.Time{}, false
		}
		return now.Add(time.Duration(secs) * time.Second), true
	}
	at, err := http.ParseTime(v)
	if err != nil || !at.After(now) {
		return time.Time{}, false
	}
	return at, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// verdict is what the breaker learns from one call. Instants are clock
// offsets (shared.offset).
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

// classifyCall runs the classifier on a call's result. When the request's
// own context was canceled, the error it sees matches [context.Canceled]
// whatever the base returned: net/http returns a context's cause (errgroup's,
// say) rather than context.Canceled, and the caller giving up says nothing
// about the host.
func (t *Transport) classifyCall(req *http.Request, resp *http.Response, err error) Outcome {
	if err != nil || !t.strict {
		return t.classifyWith(req, resp, err)
	}
	if resp.StatusCode == http.StatusOK { // DefaultClassifier's answer, inlined (TestStrictIsTheDefaultClassifier)
		return Success
	}
	return Failure
}

// classifyWith runs the Transport's classifier, as classifyCall says.
func (t *Transport) classifyWith(req *http.Request, resp *http.Response, err error) Outcome {
	if err != nil && callerCanceled(req) {
		err = canceledError{err}
	}
	return t.classify(resp, err).normal()
}

// callerCanceled reports whether req's own context was canceled (not timed
// out: an expired deadline is the host's slowness).
func callerCanceled(req *http.Request) bool {
	return errors.Is(req.Context().Err(), context.Canceled)
}

// canceledError is a transport error seen by the classifier of a call whose
// caller canceled it: it matches context.Canceled and unwraps to the error.
type canceledError struct{ err error }

func (e canceledError) Error() string { return e.err.Error() }

func (e canceledError) Unwrap() error { return e.err }

func (e canceledError) Is(target error) bool { return target == context.Canceled }
