package httpbreaker

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
)

// retryBudget is a host's retry budget (Policy.RetryBudget), Finagle's
// and Envoy's idea: over the rules' window (Window, or DefaultRuleWindow
// without one) the host may take RetryBudget
// retries per call that was not itself a retry, plus MinRetries whatever
// its traffic, so a quiet host can still retry. The calls are the
// breaker's rate window's (Successes and Failures; kept for the budget
// without Window too, where it trips nothing), so a
// call costs the budget nothing; only AllowRetry touches it. That window
// starts empty when the circuit closes: after a recovery the host has its
// floor until calls come back, which is when retries are least welcome.
// Made at the host's first AllowRetry (retryBudgets), so a host never
// retried pays a pointer for it.
type retryBudget struct {
	// mu makes a withdrawal exact: the check and the count are one step.
	mu sync.Mutex
	// withdrawn counts, as successes, the retries allowed per bucket, and
	// as failures the hedges (takeHedge).
	withdrawn rateWindow
	// allowed and denied count AllowRetry's answers since the host was
	// first tracked.
	allowed, denied atomic.Uint64
}

// AllowRetry reports whether req may be sent again now. true withdraws one
// retry from the budget of req's host (Policy.RetryBudget); false — when
// that budget is spent, when the circuit would refuse the request (open,
// isolated, or half-open: its few probe slots go to fresh calls), or when
// the host is shedding load — is counted too. It sends nothing and never
// blocks. Without RetryBudget only the circuit and shedding are asked,
// and nothing is counted. Under RetryBudget, a host not tracked yet (never
// called, or forgotten under WithMaxHosts: its budget went with it) is
// tracked by AllowRetry as by the retry's call, and has its floor,
// MinRetries, like any new host. A request WithoutBreaker may always be
// retried; one the Transport would never send (nil, no URL, no host, a
// method outside the table) or whose context is done may not, and is not
// counted.
//
// Call it where a retry layer is about to retry, once per retry made:
// retryhttp.NewClient does for go-retryablehttp; docs/integrations.md
// shows resty's retry condition. CanRetry asks the same without
// withdrawing.
func (t *Transport) AllowRetry(req *http.Request) bool { return t.retry(req, true) }

// CanRetry reports whether AllowRetry would allow req's retry now,
// without withdrawing it: for a retry layer that decides before its
// backoff and withdraws (AllowRetry) only when it sends the retry. A no is
// counted as AllowRetry's is, so that each retry a layer decides on counts
// once, allowed or denied.
func (t *Transport) CanRetry(req *http.Request) bool { return t.retry(req, false) }

// AllowRetryCall is AllowRetry for a call that is not an HTTP request:
// whether the call to the circuit named key (as Allow names it) may be
// retried now, withdrawing the retry from its budget. ctx is the call's:
// WithoutBreaker may always retry, a done context may not.
func (t *Transport) AllowRetryCall(ctx context.Context, key string) bool {
	return t.retryKey(ctx, key, true)
}

// CanRetryCall is CanRetry for a call that is not an HTTP request: what
// AllowRetryCall would answer now, without withdrawing.
func (t *Transport) CanRetryCall(ctx context.Context, key string) bool {
	return t.retryKey(ctx, key, false)
}

// retryKey answers AllowRetryCall (withdraw) or CanRetryCall.
func (t *Transport) retryKey(ctx context.Context, key string, withdraw bool) bool {
	if t.base == nil || ctx == nil || key == "" || ctx.Err() != nil {
		return false
	}
	if controlsSeen.Load() && controlsOf(ctx).bypass {
		return true
	}
	var b *breaker
	if t.s.budgets {
		b = t.hosts.obtain(key, &t.s)
	} else {
		b = t.hosts.lookup(key)
	}
	return t.retryOn(b, withdraw)
}

// retry answers AllowRetry (withdraw) or CanRetry.
func (t *Transport) retry(req *http.Request, withdraw bool) bool {
	b, ok := t.retryFor(req)
	return ok && t.retryOn(b, withdraw)
}

// retryOn answers for a retry to b (nil: no circuit, which may retry):
// refused while the circuit or shedding would refuse it, and under
// RetryBudget by the budget, which counts the answer.
func (t *Transport) retryOn(b *breaker, withdraw bool) bool {
	if b == nil {
		return true
	}
	refused := b.current(&t.s) != StateClosed || b.shedding(&t.s)
	if !t.s.budgets {
		return !refused
	}
	return b.more.rules.budget.get().take(&t.s, b.more.window, refused, withdraw)
}

// retryFor finds the host a retry of req would go to (nil for none); ok
// is false for a request that may not be retried at all, and true with no
// host for one WithoutBreaker, or, without RetryBudget, to a host never
// called. Under RetryBudget it tracks the host as the retry's call will,
// and marks it used: a host being retried is in use, eviction's last
// pick, and one the bound forgot comes back with a new budget, its floor
// counted like any other's instead of a yes counted nowhere.
func (t *Transport) retryFor(req *http.Request) (b *breaker, ok bool) {
	if req == nil || req.Context().Err() != nil {
		return nil, false
	}
	b, _, err := t.hostOf(req, t.s.budgets)
	if err != nil {
		return nil, false
	}
	return b, true // b nil: WithoutBreaker, never called, or no room under the bound
}

// retryBudgets holds a host's retry budget once it has one.
type retryBudgets struct{ p atomic.Pointer[retryBudget] }

// get returns the budget, making it on first use.
func (rbs *retryBudgets) get() *retryBudget {
	if rb := rbs.p.Load(); rb != nil {
		return rb
	}
	rbs.p.CompareAndSwap(nil, new(retryBudget))
	return rbs.p.Load()
}

// take reports whether the budget has a retry now and, with withdraw,
// takes it (counted as allowed); a no — refused already, or the window's
// retries at MinRetries plus RetryBudget times the calls that were not
// retries (rounded down) — is counted as a denial either way.
func (rb *retryBudget) take(s *shared, calls *rateWindow, refused, withdraw bool) bool {
	if !refused {
		index := s.bucket(s.clock())
		rb.mu.Lock()
		ok := rb.holds(s, calls, index)
		if ok && withdraw {
			rb.withdrawn.record(index, false)
		}
		rb.mu.Unlock()
		if ok {
			if withdraw {
				rb.allowed.Add(1)
			}
			return true
		}
	}
	rb.denied.Add(1)
	return false
}

// takeHedge withdraws a hedged attempt (hedge.go) from the budget, or
// reports false. A hedge is not a call of its own — only the call's
// winning answer is counted — so it is withdrawn apart from the retries
// (and counted by the hedging rule, not as a retry): retries and hedges
// together stay within the budget of the fresh calls.
func (rb *retryBudget) takeHedge(s *shared, calls *rateWindow) bool {
	index := s.bucket(s.clock())
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if !rb.holds(s, calls, index) {
		return false
	}
	rb.withdrawn.record(index, true)
	return true
}

// holds reports whether the window ending with the bucket of index has a
// retry left: its retries and hedges are below MinRetries plus RetryBudget
// times the calls that were not retries (rounded down). withdrawn counts
// retries as its successes and hedges as its failures. Requires rb.mu.
func (rb *retryBudget) holds(s *shared, calls *rateWindow, index int64) bool {
	successes, failures := calls.counts(index)
	retries, hedges := rb.withdrawn.counts(index)
	fresh := max(successes+failures-retries, 0)
	return retries+hedges < s.policy.MinRetries+int(s.policy.RetryBudget*float64(fresh))
}

// reset empties the budget's window (ClearState); its counts stay.
func (rbs *retryBudgets) reset() {
	if rb := rbs.p.Load(); rb != nil {
		rb.mu.Lock()
		rb.withdrawn.reset()
		rb.mu.Unlock()
	}
}

// status fills the budget's part of a host's status.
func (rbs *retryBudgets) status(st *HostStatus) {
	if rb := rbs.p.Load(); rb != nil {
		st.Total.Retries, st.Total.RetriesDenied = rb.allowed.Load(), rb.denied.Load()
	}
}
