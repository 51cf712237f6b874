package breakergrpc_test

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakergrpc"
)

// A real gRPC server on loopback: the health service, whose request's
// service name says how to answer, so no generated code is needed.
//
//	""                 SERVING
//	"code=NAME"        Check fails with that status code (codes.Code's name)
//	"hang"             Check answers when its context ends
//	"watch=N,NAME"     Watch sends N messages, then ends with that code (OK: io.EOF)
//	"watch=N,hang"     Watch sends N messages, then waits for its context
type server struct {
	srv   *grpc.Server
	addr  string
	calls atomic.Int64 // calls that reached the server, unary and streams
	healthpb.UnimplementedHealthServer
}

func startServer(t *testing.T) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{srv: grpc.NewServer(), addr: lis.Addr().String()}
	healthpb.RegisterHealthServer(s.srv, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.srv.Serve(lis) }()
	t.Cleanup(func() { s.srv.Stop(); <-done })
	return s
}

func codeNamed(name string) codes.Code {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == name {
			return c
		}
	}
	panic("no code named " + name)
}

func (s *server) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.calls.Add(1)
	switch name, ok := strings.CutPrefix(req.Service, "code="); {
	case ok:
		return nil, status.Error(codeNamed(name), "as asked")
	case req.Service == "hang":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s *server) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	s.calls.Add(1)
	spec, _ := strings.CutPrefix(req.Service, "watch=")
	count, end, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(count)
	for range n {
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	if end == "hang" {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	if c := codeNamed(end); c != codes.OK {
		return status.Error(c, "as asked")
	}
	return nil
}

// dial connects to target through rt's interceptors, or, for a nil rt,
// through those opts gives.
func dial(t *testing.T, target string, rt *httpbreaker.Transport, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if rt != nil {
		opts = append(opts,
			grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt)),
			grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(rt)))
	}
	conn, err := grpc.NewClient(target, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func check(client healthpb.HealthClient, service string) error {
	_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	return err
}

// clock is a settable clock for the breakers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTransport(t *testing.T, opts ...httpbreaker.Option) *httpbreaker.Transport {
	t.Helper()
	rt, err := httpbreaker.New(nil, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { rt.Close() })
	return rt
}

// waitFor spins until cond holds: for what a goroutine of gRPC's or the
// collector does after the test's last call returned. It fails the test
// after a generous bound instead of hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		runtime.GC() // the collector finalizes a dropped stream's admission
		runtime.Gosched()
	}
}
