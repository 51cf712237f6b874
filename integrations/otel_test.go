package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakerotel"
)

// point finds the value of metric name with the given attributes.
func point(t *testing.T, rm metricdata.ResourceMetrics, name string, attrs ...attribute.KeyValue) (int64, bool) {
	t.Helper()
	want := attribute.NewSet(attrs...)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch data := m.Data.(type) {
			case metricdata.Gauge[int64]:
				points = data.DataPoints
			case metricdata.Sum[int64]:
				points = data.DataPoints
			}
			for _, p := range points {
				if p.Attributes.Equals(&want) {
					return p.Value, true
				}
			}
		}
	}
	return 0, false
}

// The OpenTelemetry adapter reports, at collection time, each host's state,
// calls by outcome and refusals, and the transitions, through the SDK's
// manual reader.
func TestOpenTelemetryMetrics(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = provider.Shutdown(context.Background()) }()
	reg, err := breakerotel.Register(rt, provider, breakerotel.WithAttributes(attribute.String("client", "menu")))
	require.NoError(t, err)
	defer func() { _ = reg.Unregister() }()

	for range 3 {
		if resp, err := http.Get(upstream.URL); err == nil { // outside the breaker: nothing counted
			_ = resp.Body.Close()
		}
		req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
		if resp, err := rt.RoundTrip(req); err == nil {
			_ = resp.Body.Close()
		}
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	host := attribute.String("server.address", rt.Snapshot()[0].Host)
	client := attribute.String("client", "menu")
	for _, c := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  int64
	}{
		{"httpbreaker.circuit.state", []attribute.KeyValue{client, host}, 1},
		{"httpbreaker.calls", []attribute.KeyValue{client, host, attribute.String("httpbreaker.outcome", "failure")}, 2},
		{"httpbreaker.calls", []attribute.KeyValue{client, host, attribute.String("httpbreaker.outcome", "success")}, 0},
		{"httpbreaker.rejected", []attribute.KeyValue{client, host}, 1},
		{"httpbreaker.transitions", []attribute.KeyValue{client, attribute.String("httpbreaker.from", "closed"),
			attribute.String("httpbreaker.to", "open")}, 1},
	} {
		got, ok := point(t, rm, c.name, c.attrs...)
		if assert.True(t, ok, "%s %v", c.name, c.attrs) {
			assert.Equal(t, c.want, got, "%s %v", c.name, c.attrs)
		}
	}

	require.NoError(t, reg.Unregister())
	rm = metricdata.ResourceMetrics{}
	require.NoError(t, reader.Collect(context.Background(), &rm))
	_, ok := point(t, rm, "httpbreaker.circuit.state", client, host)
	assert.False(t, ok, "unregistered: nothing observed")

	_, err = breakerotel.Register(rt, provider, nil)
	assert.Error(t, err)
	_, err = breakerotel.Register(nil, provider)
	assert.Error(t, err)
}

// observed registers rt's instruments on a fresh SDK provider with a manual
// reader, unregistered and shut down when t ends, and returns a collection.
func observed(t *testing.T, rt *httpbreaker.Transport) func() metricdata.ResourceMetrics {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	reg, err := breakerotel.Register(rt, provider)
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Unregister() })
	return func() metricdata.ResourceMetrics {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		return rm
	}
}

// A host that is closed but shedding must not look healthy: the refusals
// for overload, the calls in flight and the shedding flag are observed.
func TestOpenTelemetryShowsShedding(t *testing.T) {
	finish := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("first"))
		w.(http.Flusher).Flush()
		<-finish
	}))
	defer upstream.Close()
	defer close(finish)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()
	collect := observed(t, rt)

	req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
	held, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer held.Body.Close()
	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)

	rm := collect()
	host := attribute.String("server.address", rt.Snapshot()[0].Host)
	for name, want := range map[string]int64{
		"httpbreaker.circuit.state": 0, "httpbreaker.rejected": 1, "httpbreaker.shed": 1,
		"httpbreaker.in_flight": 1, "httpbreaker.shedding": 1, "httpbreaker.concurrency.limit": 1,
	} {
		got, ok := point(t, rm, name, host)
		if assert.True(t, ok, name) {
			assert.Equal(t, want, got, name)
		}
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if gauge, ok := m.Data.(metricdata.Gauge[float64]); ok && m.Name == "httpbreaker.throttle" {
				found = len(gauge.DataPoints) == 1 && gauge.DataPoints[0].Value == 0
			}
		}
	}
	assert.True(t, found, "httpbreaker.throttle observed, 0 without Policy.Throttle")
}

// The retry budget's answers reach OpenTelemetry per host, allowed and
// denied apart.
func TestOpenTelemetryShowsRetries(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, RetryBudget: 0.1, MinRetries: 1, FailureThreshold: 100, FailureRatio: 1,
	}))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()
	collect := observed(t, rt)

	req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.True(t, rt.AllowRetry(req))
	require.False(t, rt.AllowRetry(req))
	require.False(t, rt.AllowRetry(req))

	rm := collect()
	host := attribute.String("server.address", rt.Snapshot()[0].Host)
	for answer, want := range map[string]int64{"allowed": 1, "denied": 2} {
		got, ok := point(t, rm, "httpbreaker.retries", host, attribute.String("httpbreaker.retry", answer))
		if assert.True(t, ok, answer) {
			assert.Equal(t, want, got, answer)
		}
	}
}
