package httpbreaker

import "net/http"

// judge turns a call's result into the breaker's verdict: the classifier's
// outcome (anything but Success and Ignore is a Failure), then the policy's
// timed rules: slow calls and Retry-After.
func (t *Transport) judge(req *http.Request, tk ticket, resp *http.Response, err error) verdict {
	v := verdict{outcome: t.classifyCall(req, resp, err)}
	p := &t.s.policy
	if t.s.timed {
		v.at, v.timed = t.s.clock(), true
	}
	if v.outcome == Success && p.SlowCall > 0 && v.at-tk.start > int64(p.SlowCall) {
		v.outcome = Failure
	}
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
