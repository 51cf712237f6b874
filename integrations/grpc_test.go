package integrations_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakergrpc"
	"github.com/httpbreaker/httpbreaker/integrations/breakermetrics"
	"github.com/httpbreaker/httpbreaker/redisstore"
	"github.com/httpbreaker/httpbreaker/statuspage"
)

// A gRPC target's circuit is a circuit like a host's: shared by a fleet
// through Redis, on the status page and in both metrics companions.

// grpcUpstream is a real gRPC health server on loopback that answers
// Unavailable while failing is set, and counts the calls it gets.
type grpcUpstream struct {
	healthpb.UnimplementedHealthServer
	addr    string
	failing atomic.Bool
	calls   atomic.Int64
}

func startGRPCUpstream(t *testing.T) *grpcUpstream {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &grpcUpstream{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, u)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })
	return u
}

func (u *grpcUpstream) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	u.calls.Add(1)
	if u.failing.Load() {
		return nil, status.Error(codes.Unavailable, "failing")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// grpcCheck calls Check on target through rt's interceptor.
func grpcClient(t *testing.T, target string, rt *httpbreaker.Transport) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func grpcCheck(client healthpb.HealthClient) error {
	_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err
}

// startRedis starts a real redis-server on a free loopback port, or skips
// when it is not installed unless HTTPBREAKER_REQUIRE_REDIS=1.
func startRedis(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("HTTPBREAKER_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not found and HTTPBREAKER_REQUIRE_REDIS=1: apt-get install redis-server")
		}
		t.Skip("redis-server not found: apt-get install redis-server to run the Redis tests")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil { // the server is starting: not a state under test
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr
}

// fleetMember is a Transport sharing its circuits through a Store of its
// own on the Redis at addr, as each process of a fleet has.
func fleetMember(t *testing.T, addr string, policy httpbreaker.Policy) *httpbreaker.Transport {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	store, err := redisstore.New(client)
	require.NoError(t, err)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(policy), httpbreaker.WithStore(store))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close(); _ = store.Close(); _ = client.Close() })
	return rt
}

// Two members over one Redis, under the default quorum of 2, each seeing
// the target fail: the target opens for both though neither reached the
// threshold alone, and the other's next call is refused unsent.
func TestAFleetTripsTogetherOnAGRPCTarget(t *testing.T) {
	addr := startRedis(t)
	up := startGRPCUpstream(t)
	up.failing.Store(true)
	policy := httpbreaker.Policy{FailureThreshold: 4, ResetTimeout: time.Minute}
	a, b := fleetMember(t, addr, policy), fleetMember(t, addr, policy)
	clientA, clientB := grpcClient(t, up.addr, a), grpcClient(t, up.addr, b)
	key := breakergrpc.TargetKey(up.addr)

	for range 2 { // each member's share of the threshold: ⌈4/2⌉
		require.Equal(t, codes.Unavailable, status.Code(grpcCheck(clientA)))
	}
	assert.True(t, a.IsClosed(key), "one member alone is short of the quorum")
	for range 2 {
		require.Equal(t, codes.Unavailable, status.Code(grpcCheck(clientB)))
	}
	require.True(t, b.IsOpen(key), "the second member's vote reaches the quorum")
	deadline := time.Now().Add(10 * time.Second)
	for !a.IsOpen(key) { // the fleet's opening reaches a through Redis's pub/sub
		require.False(t, time.Now().After(deadline), "the fleet's opening never reached the first member")
		time.Sleep(5 * time.Millisecond)
	}
	sent := up.calls.Load()
	err := grpcCheck(clientA)
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, sent, up.calls.Load(), "refused unsent")
}

// The status page, breakermetrics and breakerotel show a gRPC target's
// circuit beside a host's.
func TestAGRPCTargetIsShownAsAHostIs(t *testing.T) {
	up := startGRPCUpstream(t)
	up.failing.Store(true)
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 2}))
	require.NoError(t, err)
	defer rt.Close()
	client := grpcClient(t, "dns:///"+up.addr, rt)
	for range 3 {
		_ = grpcCheck(client)
	}
	key := breakergrpc.TargetKey(up.addr)
	require.True(t, rt.IsOpen(key))

	page, err := statuspage.New(rt)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept", "application/json")
	page.ServeHTTP(rec, req)
	var body struct {
		Hosts []struct {
			Host  string             `json:"host"`
			State string             `json:"state"`
			Total httpbreaker.Counts `json:"total"`
		} `json:"hosts"`
	}
	require.NoError(t, json.NewDecoder(rec.Body).Decode(&body))
	require.Len(t, body.Hosts, 1)
	assert.Equal(t, key, body.Hosts[0].Host)
	assert.Equal(t, "open", body.Hosts[0].State)
	assert.Equal(t, httpbreaker.Counts{Requests: 2, Failures: 2, Rejected: 1}, body.Hosts[0].Total)
	html := httptest.NewRecorder()
	page.ServeHTTP(html, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Contains(t, html.Body.String(), key)

	collector, err := breakermetrics.New(rt)
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(collector))
	want := `
# HELP httpbreaker_rejected_total Requests refused: circuit open, probes busy, or overload (shed_total).
# TYPE httpbreaker_rejected_total counter
httpbreaker_rejected_total{host="` + key + `"} 1
`
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "httpbreaker_rejected_total"))

	collect := observed(t, rt)
	got, ok := point(t, collect(), "httpbreaker.circuit.state", attribute.String("server.address", key))
	assert.True(t, ok, "breakerotel observes the target")
	assert.Equal(t, int64(1), got, "open")
}
