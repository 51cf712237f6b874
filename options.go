package httpbreaker

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Option configures a [Transport] made by [New]. An option given a value it
// cannot use makes New return an error rather than the Transport failing
// later.
type Option func(*config) error

// config gathers the options before New checks and copies them.
type config struct {
	policy     Policy
	classifier Classifier
	methods    methodTable
	keyFunc    func(*http.Request) string
	fallback   Fallback
	listeners  []func(Transition)
	now        func() time.Time
	maxHosts   int
	staleBytes int64
	// callerHeaders are added to DefaultCallerHeaders for the stale cache.
	callerHeaders []string
	store         Store
	// errorClassifier judges Do's calls.
	errorClassifier func(error) Outcome
}

// WithPolicy sets the thresholds and timeouts; see [Policy] for the defaults
// its zero fields take. The policy is copied: later changes to p have no
// effect. Given more than once, the last one wins whole: it replaces the
// earlier Policy, and the fields it leaves zero take their defaults, not
// the earlier values — merge fields into one Policy rather than layer them.
func WithPolicy(p Policy) Option {
	return func(c *config) error {
		c.policy = p
		return nil
	}
}

// WithClassifier sets what counts as a failure; the default is
// [DefaultClassifier].
func WithClassifier(classify Classifier) Option {
	return func(c *config) error {
		if classify == nil {
			return errors.New("httpbreaker: WithClassifier(nil)")
		}
		c.classifier = classify
		return nil
	}
}

// WithErrorClassifier sets what an error returned by a call made with
// [Transport.Do] means for its circuit; the default is
// [DefaultErrorClassifier]. It judges Do's calls only: requests have
// WithClassifier's, and a caller of [Transport.Allow] passes its outcome
// to done. When the context given to Do was canceled, err matches
// [context.Canceled] with [errors.Is] whatever the call returned, and
// unwraps to it.
func WithErrorClassifier(classify func(err error) Outcome) Option {
	return func(c *config) error {
		if classify == nil {
			return errors.New("httpbreaker: WithErrorClassifier(nil)")
		}
		c.errorClassifier = classify
		return nil
	}
}

// WithMethods replaces the table of allowed methods ([DefaultMethods]).
// Methods are matched exactly, as RFC 9110 has them case-sensitive; each must
// be a valid token. A request with any other method fails with
// [ErrInvalidMethod] and is never sent.
func WithMethods(methods ...string) Option {
	return func(c *config) error {
		table, err := newMethodTable(methods)
		if err != nil {
			return err
		}
		c.methods = table
		return nil
	}
}

// WithKeyFunc replaces the default breaker key (the request's normalised
// host) with key(req). Requests with equal keys share a breaker; an empty key
// is an error for that request. With a key func, State, ClearState and the
// other inspection methods take keys exactly as key returns them.
func WithKeyFunc(key func(*http.Request) string) Option {
	return func(c *config) error {
		if key == nil {
			return errors.New("httpbreaker: WithKeyFunc(nil)")
		}
		c.keyFunc = key
		return nil
	}
}

// WithFallback sets what answers a refused request instead of the error —
// an [*OpenError] for an open circuit, an [*OverloadError] for a refusal
// under overload (see [Fallback]): for instance the last good response. It
// runs after the request body was closed; req.GetBody, when set, gives a
// fresh copy.
func WithFallback(f Fallback) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("httpbreaker: WithFallback(nil)")
		}
		c.fallback = f
		return nil
	}
}

// WithOnStateChange adds a listener for every transition of every host.
// Listeners run after the transition, outside any lock, one transition at a
// time per host and in the order they happened (possibly on the goroutine of
// a later call to the same host); several WithOnStateChange options add
// several listeners, called in the order given. A listener may call back into
// the Transport. An open circuit turns half-open lazily, so that transition
// is heard when the host is next used or inspected. Only state changes reach
// it: a closed circuit starting or stopping to shed load does not (see
// [Transition.Shedding] and [WithOnTransition]).
func WithOnStateChange(f func(host string, from, to State)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("httpbreaker: WithOnStateChange(nil)")
		}
		c.listeners = append(c.listeners, func(ev Transition) {
			if ev.From != ev.To {
				f(ev.Host, ev.From, ev.To)
			}
		})
		return nil
	}
}

// WithOnTransition adds a listener that hears every transition with its
// instant and, for an opening, the retry time, and, under a policy with
// Throttle or MaxConcurrent, a closed circuit starting and stopping to shed
// load ([Transition.Shedding]). It is delivered like [WithOnStateChange]'s,
// in one order with them.
func WithOnTransition(f func(Transition)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("httpbreaker: WithOnTransition(nil)")
		}
		c.listeners = append(c.listeners, f)
		return nil
	}
}

// WithClock sets the clock the breakers read, time.Now by default. Tests
// inject a fake one to step through timeouts without sleeping.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("httpbreaker: WithClock(nil)")
		}
		c.now = now
		return nil
	}
}

// DefaultMaxHosts is how many hosts a Transport tracks at once unless
// [WithMaxHosts] says otherwise.
const DefaultMaxHosts = 10000

// WithMaxHosts bounds the hosts tracked at once, 10000 by default, so a
// Transport that sees hosts from user input (a crawler, a webhook sender)
// cannot grow without bound. At capacity a new host makes room by forgetting
// a batch of n/64 hosts (at least one): the least recently used closed hosts
// of a sample, open and half-open ones only when no closed host is left,
// isolated ones never. A forgotten host that returns starts closed with
// fresh counts. Isolated hosts are kept beyond n (see [Transport.Isolate]).
// Admitting a new host at the bound costs O(1) amortised. n < 1 makes New
// fail.
func WithMaxHosts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("httpbreaker: WithMaxHosts(%d): want at least 1", n)
		}
		c.maxHosts = n
		return nil
	}
}

// WithStaleIfError keeps the last good response of each GET, in the spirit
// of RFC 5861's stale-if-error, and serves it while the URL's host is
// refused, fails at the transport, or answers 5xx — the "last successfully
// fetched" answer as a built-in.
//
// What is kept (RFC 9111 §3): a GET's complete 200, 203 or 204 response
// classified Success, once the caller has read its body to the end (it is
// captured as the caller reads it, never buffered before), unless the
// request or the response says Cache-Control: no-store, the response says
// Vary: *, or the request asked for a range. Of two responses for one
// request, the one that arrived later is kept (RFC 9111 §4), whichever body
// the caller finished first. Entries take at most maxBytes in all, counted
// as what they hold — URL, headers and body — plus a fixed overhead each;
// the least recently used go first.
//
// Who gets it: a kept response is served only to a request for the same URL
// on the same Host whose caller-identifying headers (see
// [WithCallerHeaders]; every value, however the key is spelled) digest the
// same, and whose headers named by the response's Vary, and its
// Accept-Encoding, are the same: one user's data never reaches another.
// It carries a Warning: 110 header and an Age header counted from its
// arrival. The failure still counts for the breaker, and a 5xx it replaces
// is drained and closed. A stale response comes before the Fallback, which
// comes before the error. maxBytes < 1 makes New fail.
func WithStaleIfError(maxBytes int64) Option {
	return func(c *config) error {
		if maxBytes < 1 {
			return fmt.Errorf("httpbreaker: WithStaleIfError(%d): want at least 1 byte", maxBytes)
		}
		c.staleBytes = maxBytes
		return nil
	}
}

// WithCallerHeaders adds headers that identify a caller (a tenant header,
// a custom API key) to [DefaultCallerHeaders]: [WithStaleIfError] serves a
// kept response only to requests whose values of all of them are the same.
// Names are matched case-insensitively; an empty or invalid name makes New
// fail.
func WithCallerHeaders(names ...string) Option {
	return func(c *config) error {
		for _, name := range names {
			if !isToken(name) {
				return fmt.Errorf("httpbreaker: WithCallerHeaders: %q is not a valid header name", name)
			}
			c.callerHeaders = append(c.callerHeaders, http.CanonicalHeaderKey(name))
		}
		return nil
	}
}

// WithStore shares the Transport's circuits through s. The Transport
// subscribes to s when made and unsubscribes when closed
// ([Transport.Close]); closing s is the caller's business, after the
// Transports that use it.
func WithStore(s Store) Option {
	return func(c *config) error {
		if s == nil {
			return errors.New("httpbreaker: WithStore(nil)")
		}
		c.store = s
		return nil
	}
}
