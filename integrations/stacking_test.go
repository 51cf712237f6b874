package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"resty.dev/v3"

	"github.com/httpbreaker/httpbreaker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server answers with status and counts its calls.
func server(t *testing.T, handler http.Handler) *httptest.Server {
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func statusHandler(status int, calls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(status)
	})
}

func TestRestyRetriesBreakPerHost(t *testing.T) {
	var downCalls, upCalls atomic.Int64
	down := server(t, statusHandler(http.StatusServiceUnavailable, &downCalls))
	up := server(t, statusHandler(http.StatusOK, &upCalls))
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3}))
	require.NoError(t, err)
	client := resty.New().
		SetTransport(rt).
		SetRetryCount(5).
		SetRetryWaitTime(time.Microsecond).SetRetryMaxWaitTime(time.Microsecond).
		AddRetryConditions(func(r *resty.Response, _ error) bool { return r != nil && r.StatusCode() >= 500 })
	defer client.Close()

	_, err = client.R().Get(down.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "resty's retries meet the open circuit and stop")
	assert.Equal(t, int64(3), downCalls.Load(), "FailureThreshold calls reached the failing host")
	var open *httpbreaker.OpenError
	require.ErrorAs(t, err, &open)

	resp, err := client.R().Get(up.URL)
	require.NoError(t, err, "the other host is not affected")
	assert.Equal(t, http.StatusOK, resp.StatusCode())
	assert.Equal(t, int64(1), upCalls.Load())
}

// tracing returns a tracer provider that records ended spans.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

func spansOf(rec *tracetest.SpanRecorder, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

func TestOtelhttpOutsideTheBreakerTracesRefusals(t *testing.T) {
	tp, rec := tracing(t)
	var calls atomic.Int64
	srv := server(t, otelhttp.NewHandler(statusHandler(http.StatusInternalServerError, &calls), "menu",
		otelhttp.WithTracerProvider(tp)))
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	require.NoError(t, err)
	client := &http.Client{Transport: otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(tp))}
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)

	clientSpans := spansOf(rec, trace.SpanKindClient)
	require.Len(t, clientSpans, 2, "the refusal has its span")
	refused := clientSpans[1]
	assert.Equal(t, codes.Error, refused.Status().Code)
	assert.Contains(t, refused.Status().Description, "circuit open", "the span says why")
	assert.Len(t, spansOf(rec, trace.SpanKindServer), 1, "and no upstream span: nothing was sent")
	assert.Equal(t, int64(1), calls.Load())
}

func TestOtelhttpInsideTheBreakerHidesRefusals(t *testing.T) {
	tp, rec := tracing(t)
	var calls atomic.Int64
	srv := server(t, statusHandler(http.StatusInternalServerError, &calls))
	rt, err := httpbreaker.New(otelhttp.NewTransport(nil, otelhttp.WithTracerProvider(tp)),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	require.NoError(t, err)
	client := &http.Client{Transport: rt}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.Len(t, spansOf(rec, trace.SpanKindClient), 1, "the wrong order: the refusal left no trace")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
