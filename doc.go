// Package httpbreaker is a circuit breaker for outbound HTTP: an
// [http.RoundTripper] that wraps any transport and keeps one breaker per
// target host.
//
//	rt, err := httpbreaker.New(nil, // nil: a pooled transport of its own
//		httpbreaker.WithClassifier(httpbreaker.ServerErrorClassifier)) // a REST API: only 5xx, 429, 408 and transport errors fail
//	if err != nil { ... }
//	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
//	resp, err := client.Get("https://api.example.com/menu")
//	if errors.Is(err, httpbreaker.ErrCircuitOpen) { ... } // refused at once
//
// # States
//
// Each host's circuit starts closed: requests go through and each result is
// classified. [Policy.FailureThreshold] consecutive failures open it; the
// request whose failure opened it still gets its own response or error. An
// open circuit refuses requests without sending them: the caller gets an
// [*OpenError], or what the [Fallback] set by [WithFallback] returns. After
// [Policy.ResetTimeout] the circuit is half-open and lets up to
// [Policy.HalfOpenMaxRequests] probes through at once; others are refused.
// [Policy.SuccessThreshold] probe successes in a row close it; a probe
// failure opens it for another ResetTimeout; an ignored probe frees its slot.
// The outcome of a call is decided when its response headers arrive, so a
// body the caller never reads holds nothing.
//
// Beyond the count of consecutive failures, a [Policy] can trip on a
// failure rate over a sliding window ([Policy.Window]), count slow calls as
// failures ([Policy.SlowCall]), grow the open time after each failed probe
// ([Policy.MaxResetTimeout]) and honour a 429 or 503's Retry-After
// ([Policy.MaxRetryAfter]). Each is off at its zero value.
//
// # Overload
//
// A host may be up but overloaded. [Policy.Throttle] refuses calls locally,
// while the circuit is closed, with the probability the Google SRE book's
// adaptive throttling gives, so that a host answering part of its calls
// keeps serving them instead of being cut off; [WithCriticality] decides
// whose calls are refused first. [Policy.MaxConcurrent] caps the calls in
// flight to one host, so a slow host cannot hold every goroutine;
// [Policy.AdaptiveConcurrency] makes that cap follow the host's latency, so
// it need not be guessed. Their refusals match [ErrOverloaded]; each is off,
// and free, at its zero value. [Policy.RetryBudget] keeps retry layers from
// multiplying an outage: [Transport.AllowRetry] says whether a host may take
// one more retry.
//
// # Hosts
//
// The breaker key is the request URL's host, lower-cased, with the port kept
// only when it is explicit and not the scheme's default:
// https://API.example.com:443/x and https://api.example.com share a breaker,
// http://127.0.0.1:8080 has its own. [WithKeyFunc] replaces the rule, and
// [WithKey] chooses one request's circuit. [Transport.State], the Is methods
// and [Transport.ClearState] take a tracked key exactly as given, or else a
// host, a host:port or an absolute URL. [WithMaxHosts] bounds how many hosts are
// tracked; [Transport.Isolate] cuts one off by hand; [Transport.Status] and
// [Transport.Snapshot] report states and counts.
//
// # Fallbacks
//
// [WithStaleIfError] serves the last good response of a GET while its host
// is refused, failing or answering 5xx; [WithFallback] answers other
// refusals.
//
// # Fleets
//
// [WithStore] shares circuits across processes: with
// github.com/httpbreaker/httpbreaker/redisstore, every process using one
// Redis behaves like one breaker per host, and a healthy request still costs
// Redis nothing. A host opens for the fleet only when a quorum of members
// each see it failing; a member short of it opens its own circuit alone.
//
// # Failures
//
// A [Classifier] decides what a call means. [DefaultClassifier] is strict —
// only a 200 succeeds — and treats a transport error as a failure unless
// the caller canceled the request itself. [SuccessStatus]
// lists the codes that succeed; any func of the Classifier type will do.
//
// # Methods
//
// A request whose method is outside the allowed table ([DefaultMethods], or
// [WithMethods]) fails with [ErrInvalidMethod] before anything is sent.
//
// # Errors
//
// Errors arrive wrapped in [*url.Error] through [http.Client]; match them with
// [errors.Is] against [ErrCircuitOpen], [ErrOverloaded] or [ErrInvalidMethod],
// and use [errors.As] to read the [*OpenError]'s host, retry time and
// whether the host is isolated, or the [*OverloadError]'s cause.
//
// # Companion packages
//
//   - statuspage: an HTML and JSON page of every host, with isolate and clear
//     controls for the requests the program authorizes.
//   - github.com/httpbreaker/httpbreaker/redisstore: a [Store] over Redis, one
//     breaker per host for a whole fleet (a module of its own).
//   - github.com/httpbreaker/httpbreaker/integrations/retryhttp: a
//     go-retryablehttp client whose retries stop at a refusal and come out
//     of the host's retry budget (a module of its own).
//   - github.com/httpbreaker/httpbreaker/integrations/breakermetrics: a
//     Prometheus collector (a module of its own).
//   - github.com/httpbreaker/httpbreaker/integrations/breakerotel:
//     OpenTelemetry metrics, on the metric API alone (a module of its own).
//
// # Concurrency and cost
//
// RoundTrip follows a fixed sequence: the key's host, its circuit, each
// rule the policy turns on (throttling, the concurrency cap), the send, the
// verdict counted by the circuit and then by each rule, the fleet, the
// stale cache and the fallback. A rule the policy leaves off costs one
// predictable branch.
//
// A Transport is safe for simultaneous use. It starts no goroutine and no
// timer: an open circuit turns half-open when it is next used or inspected.
// A closed circuit costs one map lookup and a few atomic operations per
// request, with no lock shared across hosts, no clock read and no
// allocation. Listeners set by [WithOnStateChange] run outside any lock, in
// order per host.
package httpbreaker
