package bench

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/sony/gobreaker/v2"
	"resty.dev/v3"

	"github.com/httpbreaker/httpbreaker"
)

// Every contender is configured to the same rule: trip after 5 consecutive
// failures, a 200 is the only success, stay open for a minute.
const (
	threshold = 5
	openFor   = time.Minute
)

// errStatus marks a non-200 response for breakers that only count errors.
var errStatus = errors.New("status other than 200")

// contender wraps a base transport the way a user of that library would.
type contender struct {
	name string
	wrap func(base http.RoundTripper) http.RoundTripper
}

var contenders = []contender{
	{"bare", func(base http.RoundTripper) http.RoundTripper { return base }},
	{"floor", newFloor},
	{"httpbreaker", newHTTPBreaker},
	{"httpbreaker-window", newHTTPBreakerWith(httpbreaker.Policy{Window: 30 * time.Second})},
	{"httpbreaker-throttle", newHTTPBreakerWith(httpbreaker.Policy{Window: 30 * time.Second, Throttle: 1.1})},
	{"httpbreaker-maxconcurrent", newHTTPBreakerWith(httpbreaker.Policy{MaxConcurrent: 1 << 20})},
	// The adaptive limit with its floor at its ceiling: every call pays for
	// its sample and its windows, and nothing is refused.
	{"httpbreaker-adaptive", newHTTPBreakerWith(httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 1 << 20, MinConcurrent: 1 << 20})},
	{"httpbreaker-budget", newHTTPBreakerWith(httpbreaker.Policy{Window: 30 * time.Second, RetryBudget: 0.2})},
	{"gobreaker", newGoBreaker},
	{"failsafe", newFailsafe},
	{"resty-client", newRestyClient},
	{"resty", newResty},
	{"hystrix", newHystrix},
}

// perHost is the per-host registry a user would write around a breaker
// library that has none: a sync.Map of host → value.
type perHost[T any] struct {
	hosts sync.Map
	make  func(host string) T
}

func (p *perHost[T]) get(host string) T {
	if v, ok := p.hosts.Load(host); ok {
		return v.(T)
	}
	v, _ := p.hosts.LoadOrStore(host, p.make(host))
	return v.(T)
}

// floor: a sync.Map load plus an atomic add, the least any per-host breaker
// can cost.
type floor struct {
	base  http.RoundTripper
	hosts perHost[*atomic.Int64]
}

func newFloor(base http.RoundTripper) http.RoundTripper {
	f := &floor{base: base}
	f.hosts.make = func(string) *atomic.Int64 { return new(atomic.Int64) }
	return f
}

func (f *floor) RoundTrip(req *http.Request) (*http.Response, error) {
	f.hosts.get(req.URL.Host).Add(1)
	return f.base.RoundTrip(req)
}

func newHTTPBreaker(base http.RoundTripper) http.RoundTripper {
	return newHTTPBreakerWith(httpbreaker.Policy{})(base)
}

// newHTTPBreakerWith is httpbreaker under the common rule plus policy's
// other rules: the rate window and the throttle, measured beside the
// default so that their cost is a ratio from one run.
func newHTTPBreakerWith(policy httpbreaker.Policy) func(http.RoundTripper) http.RoundTripper {
	return func(base http.RoundTripper) http.RoundTripper {
		policy.FailureThreshold, policy.ResetTimeout = threshold, openFor
		rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(policy),
			httpbreaker.WithMaxHosts(1<<20)) // the others are unbounded: let it track all 100k hosts of the memory benchmark
		if err != nil {
			panic(err)
		}
		return rt
	}
}

// gobreaker v2, one CircuitBreaker per host.
type goBreaker struct {
	base  http.RoundTripper
	hosts perHost[*gobreaker.CircuitBreaker[*http.Response]]
}

func newGoBreaker(base http.RoundTripper) http.RoundTripper {
	g := &goBreaker{base: base}
	g.hosts.make = func(host string) *gobreaker.CircuitBreaker[*http.Response] {
		return gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
			Name:        host,
			Timeout:     openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		})
	}
	return g
}

func (g *goBreaker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.hosts.get(req.URL.Host).Execute(func() (*http.Response, error) {
		resp, err := g.base.RoundTrip(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			return resp, errStatus
		}
		return resp, err
	})
	if errors.Is(err, errStatus) {
		return resp, nil
	}
	return resp, err
}

// failsafe-go's failsafehttp RoundTripper, one per host with its own
// circuit breaker.
type failsafe struct {
	hosts perHost[http.RoundTripper]
}

func newFailsafe(base http.RoundTripper) http.RoundTripper {
	f := &failsafe{}
	f.hosts.make = func(string) http.RoundTripper {
		cb := circuitbreaker.NewBuilder[*http.Response]().
			HandleIf(func(resp *http.Response, err error) bool { return err != nil || resp.StatusCode != http.StatusOK }).
			WithFailureThreshold(threshold).
			WithDelay(openFor).
			Build()
		return failsafehttp.NewRoundTripper(base, cb)
	}
	return f
}

func (f *failsafe) RoundTrip(req *http.Request) (*http.Response, error) {
	return f.hosts.get(req.URL.Host).RoundTrip(req)
}

// resty v3 is a client, not a transport: its breaker is measured as a resty
// client with the breaker against the same client without ("resty-client").
// Its breaker guards the whole client, not each host.
type restyRT struct{ client *resty.Client }

func newRestyClient(base http.RoundTripper) http.RoundTripper {
	return &restyRT{client: resty.New().SetTransport(base)}
}

func newResty(base http.RoundTripper) http.RoundTripper {
	policy := func(resp *resty.Response) bool { return resp.RawResponse == nil || resp.StatusCode() != http.StatusOK }
	cb := resty.NewCircuitBreakerCount(threshold, 1, openFor, policy)
	return &restyRT{client: resty.New().SetTransport(base).SetCircuitBreaker(cb)}
}

func (r *restyRT) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.client.R().SetContext(req.Context()).Execute(req.Method, req.URL.String())
	if err != nil {
		return nil, err
	}
	return resp.RawResponse, nil
}

// hystrix-go, one command per host. It trips on an error percentage over a
// rolling window; 100% of at least 5 requests is the nearest rule.
type hystrixRT struct {
	base  http.RoundTripper
	id    string
	hosts perHost[string]
}

var hystrixInstances atomic.Int64

func newHystrix(base http.RoundTripper) http.RoundTripper {
	h := &hystrixRT{base: base, id: strconv.FormatInt(hystrixInstances.Add(1), 10)}
	h.hosts.make = func(host string) string {
		name := h.id + "/" + host // hystrix's registry is global
		hystrix.ConfigureCommand(name, hystrix.CommandConfig{
			Timeout:                60_000,
			MaxConcurrentRequests:  100_000,
			RequestVolumeThreshold: threshold,
			ErrorPercentThreshold:  100,
			SleepWindow:            int(openFor / time.Millisecond),
		})
		return name
	}
	return h
}

func (h *hystrixRT) RoundTrip(req *http.Request) (*http.Response, error) {
	var resp *http.Response
	err := hystrix.Do(h.hosts.get(req.URL.Host), func() error {
		r, err := h.base.RoundTrip(req)
		if err != nil {
			return err
		}
		resp = r
		if r.StatusCode != http.StatusOK {
			return errStatus
		}
		return nil
	}, nil)
	if err != nil && !errors.Is(err, errStatus) {
		return nil, err
	}
	return resp, nil
}
