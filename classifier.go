package httpbreaker

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Outcome is a classifier's verdict on one call.
type Outcome int

const (
	// Success resets the consecutive-failure count; in half-open it counts
	// towards closing the circuit.
	Success Outcome = iota
	// Failure counts towards opening the circuit; in half-open it reopens it.
	Failure
	// Ignore counts neither way, e.g. a call the caller itself canceled.
	Ignore
)

// String returns "success", "failure" or "ignore".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignore:
		return "ignore"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// normal maps any outcome other than Success and Ignore to Failure.
func (o Outcome) normal() Outcome {
	if o != Success && o != Ignore {
		return Failure
	}
	return o
}

// Classifier decides what one call through the base transport means for the
// breaker. It gets exactly one of resp and err non-nil, runs once the response
// headers arrived (before the body is read) and must not read or close the
// body. An Outcome other than Success, Failure and Ignore counts as Failure.
//
// When the request's own context was canceled, err matches
// [context.Canceled] with [errors.Is] whatever the base returned (net/http
// returns the cancellation's cause, errgroup's for one), and unwraps to it.
//
// The classifiers that come with the package: [DefaultClassifier] (only a
// 200 succeeds, the default), [ServerErrorClassifier] (for REST APIs and
// crawlers: only 5xx, 429, 408 and transport errors fail) and
// [SuccessStatus] (the codes you list succeed). The first two are funcs of
// this type, so the docs list them under [Outcome], what they return.
type Classifier func(resp *http.Response, err error) Outcome

// DefaultClassifier is the strict rule: a call succeeds only if the
// response status is 200 OK, so a 201, a redirect or a 404 counts as a
// failure (use [SuccessStatus] or a classifier of your own for a REST API).
// A transport error is a failure, except when the request's context was
// canceled, which is the caller's doing and is ignored; a deadline that
// expired is a failure.
func DefaultClassifier(resp *http.Response, err error) Outcome {
	if err != nil {
		return classifyError(err)
	}
	if resp.StatusCode == http.StatusOK {
		return Success
	}
	return Failure
}

// ServerErrorClassifier counts as failures only what says the host is in
// trouble: a transport error (but not the caller's own cancellation), a 5xx,
// 429 Too Many Requests and 408 Request Timeout. Everything else succeeds —
// a 201, a redirect, a 404 — which is what a REST API or a crawler wants;
// [DefaultClassifier] fails all but 200.
func ServerErrorClassifier(resp *http.Response, err error) Outcome {
	if err != nil {
		return classifyError(err)
	}
	switch code := resp.StatusCode; {
	case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return Failure
	}
	return Success
}

// SuccessStatus returns a classifier under which the given status codes
// succeed and every other status fails. Transport errors are treated as
// by [DefaultClassifier]. Codes outside 100–999 never match.
func SuccessStatus(codes ...int) Classifier {
	var ok statusSet
	for _, c := range codes {
		ok.add(c)
	}
	return func(resp *http.Response, err error) Outcome {
		if err != nil {
			return classifyError(err)
		}
		if ok.has(resp.StatusCode) {
			return Success
		}
		return Failure
	}
}

// classifyError is the shared rule for transport errors.
func classifyError(err error) Outcome {
	if errors.Is(err, context.Canceled) {
		return Ignore
	}
	return Failure
}

// DefaultErrorClassifier is what an error returned by a call made with
// [Transport.Do] means by default: nil succeeds, the caller's own
// cancellation (an error matching [context.Canceled]) is ignored, and any
// other error fails — a deadline that expired too, as for requests.
func DefaultErrorClassifier(err error) Outcome {
	if err == nil {
		return Success
	}
	return classifyError(err)
}

// statusSet is a bitset over the three-digit status codes.
type statusSet [1000/64 + 1]uint64

func (s *statusSet) add(code int) {
	if code >= 100 && code <= 999 {
		s[code/64] |= 1 << (code % 64)
	}
}

func (s *statusSet) has(code int) bool {
	return code >= 100 && code <= 999 && s[code/64]&(1<<(code%64)) != 0
}
