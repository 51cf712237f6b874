// Package retryhttp fits httpbreaker under a go-retryablehttp client: a
// retry layer belongs above the breaker, and it must not hammer a circuit the
// breaker has opened.
//
//	rt, _ := httpbreaker.New(nil)
//	client := retryablehttp.NewClient()
//	client.HTTPClient.Transport = rt
//	client.CheckRetry = retryhttp.CheckRetry
//	client.ErrorHandler = retryhttp.ErrorHandler // with WithStaleIfError: the stale answer, once retries are spent
//
// With a retry budget (httpbreaker.Policy.RetryBudget), make the client
// with NewClient(rt): every retry it sends then comes out of the host's
// budget, exactly, and a retry the budget refuses ends the call as
// RetryMax would.
package retryhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/httpbreaker/httpbreaker"
)

// CheckRetry is a [retryablehttp.CheckRetry] for clients over an
// httpbreaker Transport. It gives up at once when the breaker refused the
// request (the circuit stays open until the error's RetryAt: retrying
// sooner only meets the same refusal), when it refused it for overload (a
// retry is more load on a host already shedding it), or when the method is
// not allowed, and otherwise defers to [retryablehttp.DefaultRetryPolicy].
// The error the client returns then matches httpbreaker.ErrCircuitOpen,
// httpbreaker.ErrOverloaded or httpbreaker.ErrInvalidMethod with errors.Is.
//
// Under [httpbreaker.WithStaleIfError], a stale answer the Transport served
// because the call failed (a 5xx, a transport error: it carries Warning
// 111) is retried like the failure it stands for, so a one-off 503 gets its
// retry; a stale answer to a refusal is returned at once. Give the client
// [ErrorHandler] too, so that the stale answer reaches the caller once the
// retries are spent.
func CheckRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if errors.Is(err, httpbreaker.ErrCircuitOpen) || errors.Is(err, httpbreaker.ErrOverloaded) ||
		errors.Is(err, httpbreaker.ErrInvalidMethod) {
		return false, nil
	}
	if err == nil && staleAfterFailure(resp) && ctx.Err() == nil {
		return true, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// ErrRetryDenied is what a client wired by [NewClient] or [Budgeted] ends
// with when the Transport allows no retry although the client would have
// retried: the host's retry budget is spent, its circuit would refuse, or
// it sheds load. The call then ends as go-retryablehttp's own RetryMax ends
// it — an error saying how many attempts were made (or ErrorHandler's
// answer), the last response closed — never as a success. The error also
// wraps the last attempt's own error, if it had one.
var ErrRetryDenied = errors.New("retryhttp: the Transport allows no retry now (retry budget spent, circuit refusing or host shedding load)")

// denied is ErrRetryDenied with the last attempt's error. drained is set
// when go-retryablehttp read the last response's body already (a denial
// after the backoff): ErrorHandler then never hands that response on.
type denied struct {
	err     error
	drained bool
}

func (d *denied) Error() string {
	if d.err == nil {
		return ErrRetryDenied.Error()
	}
	return ErrRetryDenied.Error() + ": " + d.err.Error()
}

func (d *denied) Unwrap() []error {
	if d.err == nil {
		return []error{ErrRetryDenied}
	}
	return []error{ErrRetryDenied, d.err}
}

// NewClient returns a go-retryablehttp client (retryablehttp.NewClient's
// defaults) that sends through rt and asks rt's retry budget
// (httpbreaker.Policy.RetryBudget) exactly once per retry it makes: the
// wiring in one call, so the budget cannot be asked of a Transport the
// client does not use. It keeps [CheckRetry]'s rules; before the backoff
// it asks rt.CanRetry and stops at once, with [ErrRetryDenied], if the
// budget allows no retry; a retry it sends is withdrawn (rt.AllowRetry)
// for the very request it sends — its headers and context, so a circuit
// chosen by WithKeyFunc or WithKey is charged — and none is withdrawn for
// the check after the last attempt. (After a transport error the check
// before the backoff sees only the method and URL: a circuit chosen by a
// header then says no only when the retry is due, after the backoff, and
// the error is ErrRetryDenied alone.) Its ErrorHandler is [ErrorHandler].
// Change RetryMax, the waits and the Logger as you like; replacing
// CheckRetry, PrepareRetry or HTTPClient.Transport unwires the budget.
func NewClient(rt *httpbreaker.Transport) *retryablehttp.Client {
	client := retryablehttp.NewClient()
	client.HTTPClient.Transport = rt
	client.CheckRetry = asking(rt.CanRetry)
	client.PrepareRetry = func(req *http.Request) error {
		if !rt.AllowRetry(req) { // spent during the backoff
			return &denied{drained: true}
		}
		return nil
	}
	client.ErrorHandler = ErrorHandler
	return client
}

// Budgeted returns a [retryablehttp.CheckRetry] that keeps [CheckRetry]'s
// rules and, before each retry they would allow, asks rt.AllowRetry: a
// retry comes out of the host's budget (httpbreaker.Policy.RetryBudget),
// and none is made while the budget is spent, the circuit would refuse or
// the host sheds load; the call then ends with [ErrRetryDenied], as it
// ends when the client has no retries left. rt must be the Transport the
// client sends through. A CheckRetry alone cannot charge exactly:
// go-retryablehttp asks it after its last attempt too (that answer
// withdraws a retry never made), and for a transport error it sees no
// request, only the method and URL (a circuit chosen by a header is not
// the one charged). Prefer [NewClient], which charges each retry sent.
func Budgeted(rt *httpbreaker.Transport) retryablehttp.CheckRetry { return asking(rt.AllowRetry) }

// asking is a CheckRetry that keeps CheckRetry's rules and, before each
// retry they would allow, asks allow of the attempted request; a no ends
// the call with ErrRetryDenied.
func asking(allow func(*http.Request) bool) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		retry, checkErr := CheckRetry(ctx, resp, err)
		if !retry || checkErr != nil {
			return retry, checkErr
		}
		if req := attempted(ctx, resp, err); req != nil && !allow(req) {
			return false, &denied{err: err}
		}
		return true, nil
	}
}

// attempted is the request a CheckRetry is asked about: the response's,
// or, for an error, one rebuilt from what *url.Error says (net/http names
// the method and URL), with the request's own context, which carries
// httpbreaker's controls. nil if neither says.
func attempted(ctx context.Context, resp *http.Response, err error) *http.Request {
	if resp != nil && resp.Request != nil {
		return resp.Request
	}
	var urlErr *url.Error
	if !errors.As(err, &urlErr) {
		return nil
	}
	req, rebuildErr := http.NewRequestWithContext(ctx, strings.ToUpper(urlErr.Op), urlErr.URL, nil)
	if rebuildErr != nil {
		return nil
	}
	return req
}

// ErrorHandler is a [retryablehttp.ErrorHandler] for clients whose Transport
// keeps stale answers ([httpbreaker.WithStaleIfError]): when the retries are
// spent on a stale answer (by RetryMax or by the retry budget), the caller
// gets it; otherwise it does what retryablehttp does without a handler —
// close the last response and return an error saying how many attempts
// were made.
func ErrorHandler(resp *http.Response, err error, attempts int) (*http.Response, error) {
	var d *denied
	spent := err == nil || errors.As(err, &d) && d.err == nil && !d.drained
	if spent && resp != nil && isStale(resp) {
		return resp, nil
	}
	if resp != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("retryhttp: giving up after %d attempt(s): %w", attempts, err)
	}
	return nil, fmt.Errorf("retryhttp: giving up after %d attempt(s): last status %s", attempts, resp.Status)
}

// isStale reports whether resp is a stale answer of the Transport's
// (Warning 110), and staleAfterFailure whether it stands for a call that
// failed (Warning 111, "Revalidation Failed").
func isStale(resp *http.Response) bool { return hasWarning(resp, "110 ") }

func staleAfterFailure(resp *http.Response) bool { return resp != nil && hasWarning(resp, "111 ") }

func hasWarning(resp *http.Response, code string) bool {
	for _, w := range resp.Header.Values("Warning") {
		if strings.HasPrefix(w, code) {
			return true
		}
	}
	return false
}

// Waiter is a CheckRetry that waits for the breaker instead of giving up
// when the wait is short: on a refusal whose RetryAt is at most MaxWait
// away, it waits until then (or until the request's context ends) and
// retries, so the retry is the circuit's probe. Farther refusals, isolated
// hosts (a zero RetryAt) and refusals for overload give up at once as with
// CheckRetry.
type Waiter struct {
	// MaxWait is the longest it waits for a circuit to admit a probe.
	MaxWait time.Duration
	// Now is the clock; nil means time.Now. Give it the breaker's clock.
	Now func() time.Time
	// Sleep waits d or until ctx ends; nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// CheckRetry is the [retryablehttp.CheckRetry].
func (w Waiter) CheckRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	var open *httpbreaker.OpenError
	if !errors.As(err, &open) {
		return CheckRetry(ctx, resp, err)
	}
	if open.RetryAt.IsZero() { // isolated: no time is promised
		return false, nil
	}
	now, sleep := w.Now, w.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepContext
	}
	wait := max(open.RetryAt.Sub(now()), 0)
	if wait > w.MaxWait {
		return false, nil
	}
	if err := sleep(ctx, wait); err != nil {
		return false, err
	}
	return true, nil
}

func sleepContext(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
