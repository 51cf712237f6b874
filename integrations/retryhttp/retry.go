// Package retryhttp fits httpbreaker under a go-retryablehttp client: a
// retry layer belongs above the breaker, and it must not hammer a circuit the
// breaker has opened.
//
//	rt, _ := httpbreaker.New(nil)
//	client := retryablehttp.NewClient()
//	client.HTTPClient.Transport = rt
//	client.CheckRetry = retryhttp.CheckRetry
package retryhttp

import (
	"context"
	"errors"
	"net/http"
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
func CheckRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if errors.Is(err, httpbreaker.ErrCircuitOpen) || errors.Is(err, httpbreaker.ErrOverloaded) ||
		errors.Is(err, httpbreaker.ErrInvalidMethod) {
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
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
	if open.Isolated || open.RetryAt.IsZero() { // isolated: no time is promised
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
