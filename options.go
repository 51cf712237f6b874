package httpbreaker

import (
	"errors"
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
}

// WithPolicy sets the thresholds and timeouts; see [Policy] for the defaults
// its zero fields take. The policy is copied: later changes to p have no
// effect.
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

// WithFallback sets what answers a refused request instead of the
// [*OpenError]: for instance the last good response. It runs after the
// request body was closed; req.GetBody, when set, gives a fresh copy.
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
// is heard when the host is next used or inspected.
func WithOnStateChange(f func(host string, from, to State)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("httpbreaker: WithOnStateChange(nil)")
		}
		c.listeners = append(c.listeners, func(ev Transition) { f(ev.Host, ev.From, ev.To) })
		return nil
	}
}

// WithOnTransition adds a listener that hears every transition with its
// instant and, for an opening, the retry time. It is delivered like
// [WithOnStateChange]'s, in one order with them.
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
