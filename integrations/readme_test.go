package integrations_test

import (
	"context"
	"database/sql"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"resty.dev/v3"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakergrpc"
	"github.com/httpbreaker/httpbreaker/integrations/breakermetrics"
	"github.com/httpbreaker/httpbreaker/integrations/breakerotel"
	"github.com/httpbreaker/httpbreaker/integrations/retryhttp"
	"github.com/httpbreaker/httpbreaker/redisstore"
)

// The funcs below hold the README's Go snippets, verbatim, so that the
// compiler checks them; TestREADMESnippetsAreCompiled fails when a snippet
// in the README is not here.

func readmeUsage() error {
	// Only a 200 succeeds by default (the Python client's rule): a REST API's 201s and 404s
	// would count against a healthy host. ServerErrorClassifier counts only its own trouble.
	client, rt, err := httpbreaker.NewClient(&http.Client{Timeout: 10 * time.Second},
		httpbreaker.WithClassifier(httpbreaker.ServerErrorClassifier))
	if err != nil {
		return err
	}
	defer rt.Close()

	resp, err := client.Get("https://api.example.com/menu")
	if errors.Is(err, httpbreaker.ErrCircuitOpen) {
		return serveSomethingElse() // refused without calling api.example.com
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return nil
}

func serveSomethingElse() error { return nil }

func readmeBeyondHTTP(ctx context.Context, rt *httpbreaker.Transport, db *sql.DB, creds credentials.TransportCredentials) error {
	// a database call under the circuit "orders-db": refused at once while it is open
	err := rt.Do(ctx, "orders-db", func(ctx context.Context) error {
		return db.PingContext(ctx)
	})
	if err != nil {
		return err
	}

	// every gRPC call on conn under its target's circuit: "dns:///orders:443" is https://orders' circuit
	conn, err := grpc.NewClient("dns:///orders:443", grpc.WithTransportCredentials(creds),
		grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt)),
		grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(rt)))
	if err != nil {
		return err
	}
	return conn.Close()
}

func docsAllow(ctx context.Context, rt *httpbreaker.Transport, publish func(context.Context, []byte) error, msg []byte) error {
	done, err := rt.Allow(ctx, "payments-queue")
	if err != nil {
		return err // refused: *OpenError or *OverloadError, nothing was sent
	}
	err = publish(ctx, msg)
	done(httpbreaker.DefaultErrorClassifier(err))
	return err
}

func docsPerMethod() breakergrpc.Option {
	// a circuit per method: a broken method does not refuse the healthy ones
	perMethod := breakergrpc.WithKeyFunc(func(ctx context.Context, target, method string) string {
		return breakergrpc.TargetKey(target) + method
	})
	return perMethod
}

func readmeControls(ctx context.Context, tenantID, url string) error {
	ctx = httpbreaker.WithKey(ctx, "tenant-"+tenantID) // this request's circuit, whatever its host
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	health := httpbreaker.WithoutBreaker(context.Background()) // never refused, counted or cached
	_, _ = req, health
	return nil
}

func readmePolicies() []httpbreaker.Policy {
	// trip at 50% failures over 30s once 20 calls were seen (or after 5 failures in a row)
	rate := httpbreaker.Policy{Window: 30 * time.Second, MinimumRequests: 20, FailureRatio: 0.5}

	// a call slower than 2s is as bad as an error
	slow := httpbreaker.Policy{SlowCall: 2 * time.Second}

	// back off a host that stays down: 30s, 1m, 2m, 4m, then every 5m
	backoff := httpbreaker.Policy{ResetTimeout: 30 * time.Second, MaxResetTimeout: 5 * time.Minute}

	// honour Retry-After up to 5 minutes
	retryAfter := httpbreaker.Policy{MaxRetryAfter: 5 * time.Minute}
	return []httpbreaker.Policy{rate, slow, backoff, retryAfter}
}

func readmeOverload(ctx context.Context) (context.Context, []httpbreaker.Policy) {
	// shed load when a host accepts less than ~90% of calls, before runs of failures trip the breaker
	throttle := httpbreaker.Policy{Throttle: 1.1}

	// never more than 50 calls in flight to one host: a slow host holds 50 goroutines, not thousands
	bulkhead := httpbreaker.Policy{MaxConcurrent: 50}

	// as many calls in flight as each host serves without queueing, found from its latency, at most 200
	adaptive := httpbreaker.Policy{AdaptiveConcurrency: true, MaxConcurrent: 200}

	// background work yields to user-facing work when a host is overloaded
	ctx = httpbreaker.WithCriticality(ctx, httpbreaker.Sheddable)
	return ctx, []httpbreaker.Policy{throttle, bulkhead, adaptive}
}

func docsHedging() httpbreaker.Policy {
	// a second attempt for a request still unanswered after 50ms (near the host's p95),
	// within the same budget as retries: never more than a tenth more calls
	hedged := httpbreaker.Policy{HedgeAfter: 50 * time.Millisecond, RetryBudget: 0.1}
	return hedged
}

func readmeRetryBudget() httpbreaker.Policy {
	// a host may take a fifth more calls in retries (plus 10 per window), never more
	budget := httpbreaker.Policy{RetryBudget: 0.2}
	return budget
}

func readmeClassifiers() []httpbreaker.Option {
	// 200, 204 and 304 succeed, every other status fails
	codes := httpbreaker.WithClassifier(httpbreaker.SuccessStatus(200, 204, 304))

	// only the host's own trouble counts: 5xx, 429 and 408 fail, a 404 is the caller's problem
	hostTrouble := httpbreaker.WithClassifier(func(resp *http.Response, err error) httpbreaker.Outcome {
		if err != nil {
			return httpbreaker.DefaultClassifier(nil, err)
		}
		switch code := resp.StatusCode; {
		case code >= 500, code == 429, code == 408:
			return httpbreaker.Failure
		}
		return httpbreaker.Success
	})
	return []httpbreaker.Option{codes, hostTrouble}
}

func readmeManyHosts() {
	rt, _ := httpbreaker.New(nil, httpbreaker.WithMaxHosts(50_000))
	rt.Isolate("partner.example.com") // maintenance window: send nothing
	for _, h := range rt.Snapshot() {
		if h.State != httpbreaker.StateClosed {
			log.Printf("%s %s since %s (%d failures, %d refused)", h.Host, h.State, h.OpenedAt, h.Total.Failures, h.Total.Rejected)
		}
	}
}

func readmeFleet() error {
	store, err := redisstore.New(redis.NewClient(&redis.Options{Addr: "localhost:6379"}))
	if err != nil {
		return err
	}
	defer store.Close() // after the Transports; the Redis client is yours to close
	rt, err := httpbreaker.New(nil, httpbreaker.WithStore(store))
	if err != nil {
		return err
	}
	defer rt.Close() // unsubscribes from the Store; rt still works on its own
	return nil
}

func readmeLogging() *httpbreaker.Transport {
	rt, _ := httpbreaker.New(nil, httpbreaker.WithOnTransition(httpbreaker.LogStateChanges(slog.Default())))
	return rt
}

func readmePrometheus(rt *httpbreaker.Transport) error {
	collector, err := breakermetrics.New(rt)
	if err != nil {
		return err
	}
	prometheus.MustRegister(collector)
	return nil
}

func readmeOtelMetrics(rt *httpbreaker.Transport) error {
	reg, err := breakerotel.Register(rt, otel.GetMeterProvider())
	if err != nil {
		return err
	}
	defer reg.Unregister()
	return nil
}

func readmeRetryablehttp(rt *httpbreaker.Transport) *retryablehttp.Client {
	client := retryablehttp.NewClient()
	client.HTTPClient.Transport = rt // an *httpbreaker.Transport
	client.CheckRetry = retryhttp.CheckRetry
	client.ErrorHandler = retryhttp.ErrorHandler // the stale answer, once the retries are spent

	budgeted := retryhttp.NewClient(rt) // retries come out of each host's budget, one per retry sent
	_ = budgeted
	return client
}

func readmeResty(rt *httpbreaker.Transport) *resty.Client {
	client := resty.New().SetTransport(rt).SetRetryCount(3)
	return client
}

// readmeRestyBudget is the budgeted resty client of docs/integrations.md;
// TestRestyRetryConditionSpendsTheBudget runs it.
func readmeRestyBudget(rt *httpbreaker.Transport) *resty.Client {
	client := resty.New().SetTransport(rt).SetRetryCount(3).
		SetRetryDefaultConditions(false).
		AddRetryConditions(func(res *resty.Response, err error) bool {
			if errors.Is(err, httpbreaker.ErrCircuitOpen) || errors.Is(err, httpbreaker.ErrOverloaded) {
				return false // refused: a retry meets the same refusal, or adds to the overload
			}
			failed := err != nil || res.StatusCode() >= 500 || res.StatusCode() == http.StatusTooManyRequests
			return failed && rt.AllowRetry(res.Request.RawRequest)
		})
	return client
}

func readmeOtel(rt *httpbreaker.Transport) *http.Client {
	client := &http.Client{Transport: otelhttp.NewTransport(rt)}
	return client
}

var _ = []any{readmeUsage, docsHedging, readmeBeyondHTTP, docsAllow, docsPerMethod, readmeControls, readmePolicies, readmeOverload, readmeRetryBudget, readmeClassifiers, readmeManyHosts, readmeFleet, readmeLogging,
	readmePrometheus, readmeOtelMetrics, readmeRetryablehttp, readmeResty, readmeOtel}

func TestREADMESnippetsAreCompiled(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		readme = append(readme, text...)
	}
	self, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	compiled := unindent(string(self))
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("no Go snippet found in the README")
	}
	for _, b := range blocks {
		if !strings.Contains(compiled, unindent(b[1])) {
			t.Errorf("this snippet of the README or docs/ is not in readme_test.go, so nothing compiles it:\n%s", b[1])
		}
	}
}

// unindent drops each line's leading tabs and spaces and the blank lines'
// content, so a snippet matches its copy one block deeper.
func unindent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return strings.Join(lines, "\n")
}
