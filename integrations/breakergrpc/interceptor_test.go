package breakergrpc_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakergrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTargetKey(t *testing.T) {
	for target, want := range map[string]string{
		"dns:///Orders:443":             "orders",
		"orders":                        "orders",
		"Orders:80":                     "orders",
		"orders:50051":                  "orders:50051",
		"dns://8.8.8.8/orders:50051":    "orders:50051",
		"dns:///orders":                 "orders",
		"passthrough:///127.0.0.1:9000": "127.0.0.1:9000",
		"xds:///Checkout":               "checkout",
		"[::1]:443":                     "[::1]",
		"[::1]:50051":                   "[::1]:50051",
		"::1":                           "[::1]",
		"dns:///[2001:DB8::1]:50051":    "[2001:db8::1]:50051",
		"unix:///var/run/Orders.sock":   "unix:///var/run/orders.sock",
		"unix:relative.sock":            "unix:relative.sock",
		"  orders:443 ":                 "orders",
	} {
		assert.Equal(t, want, breakergrpc.TargetKey(target), "%q", target)
	}
}

// A target and an HTTP host that name one upstream are one circuit.
func TestATargetsKeyIsTheKeyOfItsHTTPHost(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	fail := func(context.Context) error { return errors.New("down") }
	_ = rt.Do(context.Background(), breakergrpc.TargetKey("dns:///Orders:443"), fail)
	assert.True(t, rt.IsOpen("https://orders/menu"), "a request to https://orders meets the target's open circuit")
}

func TestUnaryCallsOpenTheTargetsCircuitThenAreRefusedUnsent(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: time.Minute}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	key := breakergrpc.TargetKey(srv.addr)

	for range 3 {
		err := check(client, "code=Unavailable")
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.NotErrorIs(t, err, httpbreaker.ErrCircuitOpen, "the server's own answer")
	}
	require.True(t, rt.IsOpen(key))

	err := check(client, "")
	assert.Equal(t, codes.Unavailable, status.Code(err), "status.Code of a refusal")
	assert.ErrorIs(t, err, httpbreaker.ErrCircuitOpen)
	var refused *breakergrpc.RefusedError
	require.ErrorAs(t, err, &refused)
	var open *httpbreaker.OpenError
	require.ErrorAs(t, err, &open)
	assert.Equal(t, key, open.Host)
	assert.Equal(t, int64(3), srv.calls.Load(), "a refusal is never sent")
	details := status.Convert(err).Details()
	require.Len(t, details, 1, "a RetryInfo detail")
	retry, ok := details[0].(*errdetails.RetryInfo)
	require.True(t, ok, "%T", details[0])
	assert.Greater(t, retry.RetryDelay.AsDuration(), 50*time.Second, "about the reset timeout left")

	clock.Advance(time.Minute)
	require.NoError(t, check(client, ""), "the probe")
	assert.True(t, rt.IsClosed(key), "a good probe closes the circuit")
	assert.Equal(t, httpbreaker.Counts{Requests: 4, Successes: 1, Failures: 3, Rejected: 1}, rt.Status(key).Total)
}

func TestEachTargetHasItsOwnCircuit(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	sick, well := startServer(t), startServer(t)
	sickClient, wellClient := dial(t, sick.addr, rt), dial(t, "passthrough:///"+well.addr, rt)

	require.Error(t, check(sickClient, "code=Internal"))
	require.ErrorIs(t, check(sickClient, ""), httpbreaker.ErrCircuitOpen)
	require.NoError(t, check(wellClient, ""), "the other target is untouched")
	assert.True(t, rt.IsClosed(well.addr))
	assert.Len(t, rt.Snapshot(), 2)
}

func TestEachCodesVerdict(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1000}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	fails := map[codes.Code]bool{codes.Unavailable: true, codes.DeadlineExceeded: true, codes.Internal: true,
		codes.ResourceExhausted: true, codes.DataLoss: true, codes.Unknown: true}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		before := rt.Status(srv.addr).Total
		service := "code=" + c.String()
		if c == codes.OK {
			service = ""
		}
		err := check(client, service)
		require.Equal(t, c, status.Code(err))
		got := rt.Status(srv.addr).Total
		want := before
		want.Requests++
		switch {
		case fails[c]:
			want.Failures++
		case c == codes.Canceled: // the server said Canceled: nobody's fault
			want.Ignored++
		default:
			want.Successes++
		}
		assert.Equal(t, want, got, "%v", c)
		assert.Equal(t, breakergrpc.DefaultCodeClassifier(c), verdict(before, got), "%v", c)
	}
}

func verdict(before, after httpbreaker.Counts) httpbreaker.Outcome {
	switch {
	case after.Failures > before.Failures:
		return httpbreaker.Failure
	case after.Ignored > before.Ignored:
		return httpbreaker.Ignore
	}
	return httpbreaker.Success
}

// The caller's cancellation is ignored; a deadline it set that expires
// is a failure.
func TestCancellationIsIgnoredAnExpiredDeadlineFails(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	hang := &healthpb.HealthCheckRequest{Service: "hang"}

	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		waitFor(t, "the call reaches the server", func() bool { return srv.calls.Load() == 1 })
		cancel(errors.New("the caller gave up"))
	}()
	_, err := client.Check(ctx, hang)
	require.Equal(t, codes.Canceled, status.Code(err))
	assert.Equal(t, httpbreaker.Counts{Requests: 1, Ignored: 1}, rt.Status(srv.addr).Total)
	assert.True(t, rt.IsClosed(srv.addr))

	ctx, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	_, err = client.Check(ctx, hang)
	require.Equal(t, codes.DeadlineExceeded, status.Code(err))
	assert.True(t, rt.IsOpen(srv.addr), "an expired deadline fails")
}

func TestOptions(t *testing.T) {
	srv := startServer(t)
	t.Run("a circuit per method", func(t *testing.T) {
		rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
		perMethod := breakergrpc.WithKeyFunc(func(_ context.Context, target, method string) string {
			return breakergrpc.TargetKey(target) + method
		})
		client := dial(t, srv.addr, nil,
			grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt, perMethod)),
			grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(rt, perMethod)))
		require.Error(t, check(client, "code=Unavailable"))
		assert.True(t, rt.IsOpen(srv.addr+"/grpc.health.v1.Health/Check"))
		stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "watch=1,OK"})
		require.NoError(t, err, "Watch has a circuit of its own")
		_, err = stream.Recv()
		require.NoError(t, err)
		_, err = stream.Recv()
		require.ErrorIs(t, err, io.EOF)
		assert.True(t, rt.IsClosed(srv.addr+"/grpc.health.v1.Health/Watch"))
	})
	t.Run("an empty key is unguarded", func(t *testing.T) {
		rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
		none := breakergrpc.WithKeyFunc(func(context.Context, string, string) string { return "" })
		client := dial(t, srv.addr, nil, grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt, none)))
		require.Equal(t, codes.Unavailable, status.Code(check(client, "code=Unavailable")))
		require.Equal(t, codes.Unavailable, status.Code(check(client, "code=Unavailable")), "sent again")
		assert.Empty(t, rt.Snapshot())
	})
	t.Run("a code classifier", func(t *testing.T) {
		rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
		notFoundFails := breakergrpc.WithCodeClassifier(func(c codes.Code) httpbreaker.Outcome {
			if c == codes.NotFound {
				return httpbreaker.Failure
			}
			return breakergrpc.DefaultCodeClassifier(c)
		})
		client := dial(t, srv.addr, nil, grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt, notFoundFails)))
		require.Error(t, check(client, "code=NotFound"))
		assert.True(t, rt.IsOpen(srv.addr))
	})
	t.Run("nil options keep the defaults", func(t *testing.T) {
		rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
		client := dial(t, srv.addr, nil, grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt,
			nil, breakergrpc.WithKeyFunc(nil), breakergrpc.WithCodeClassifier(nil))))
		require.Error(t, check(client, "code=Internal"))
		assert.True(t, rt.IsOpen(srv.addr))
	})
	t.Run("a nil Transport fails each call, unsent", func(t *testing.T) {
		before := srv.calls.Load()
		client := dial(t, srv.addr, nil,
			grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(nil)),
			grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(nil)))
		err := check(client, "")
		assert.Equal(t, codes.FailedPrecondition, status.Code(err))
		assert.Contains(t, err.Error(), "nil *httpbreaker.Transport")
		stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{})
		assert.Nil(t, stream)
		assert.Equal(t, codes.FailedPrecondition, status.Code(err))
		assert.Equal(t, before, srv.calls.Load())
	})
}

func TestStreamsAreJudgedWhenTheyEnd(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1000, MaxConcurrent: 100}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	for _, tc := range []struct {
		service string
		want    httpbreaker.Counts
	}{
		{"watch=2,OK", httpbreaker.Counts{Requests: 1, Successes: 1}},
		{"watch=1,Unavailable", httpbreaker.Counts{Requests: 2, Successes: 1, Failures: 1}},
		{"watch=0,NotFound", httpbreaker.Counts{Requests: 3, Successes: 2, Failures: 1}},
	} {
		stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: tc.service})
		require.NoError(t, err)
		for err == nil {
			assert.Equal(t, 1, rt.Status(srv.addr).InFlight, "%s: in flight until it ends", tc.service)
			_, err = stream.Recv()
		}
		assert.Equal(t, tc.want, rt.Status(srv.addr).Total, tc.service)
		assert.Equal(t, 0, rt.Status(srv.addr).InFlight)
		_, err = stream.Recv() // after its end: judged once
		require.Error(t, err)
		assert.Equal(t, tc.want, rt.Status(srv.addr).Total, "%s: judged once", tc.service)
	}
}

// Under MaxConcurrent a stream holds its slot from its start to its end;
// a canceled stream frees it with nothing more read.
func TestAStreamHoldsItsSlotUntilItEnds(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)

	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "watch=1,hang"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)

	sent := srv.calls.Load()
	err = check(client, "")
	assert.ErrorIs(t, err, httpbreaker.ErrOverloaded, "the stream holds the one slot")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, sent, srv.calls.Load(), "refused unsent")

	cancel()
	waitFor(t, "the canceled stream frees its slot", func() bool { return rt.Status(srv.addr).InFlight == 0 })
	runtime.KeepAlive(stream) // freed by its cancellation, not by the collector
	require.NoError(t, check(client, ""))
	assert.Equal(t, httpbreaker.Counts{Requests: 2, Successes: 1, Ignored: 1, Rejected: 1, Shed: 1}, rt.Status(srv.addr).Total,
		"the canceled stream is ignored")
}

// A stream the caller drops, neither read to its end nor canceled, gives
// its slot back when the collector finds it.
func TestAnAbandonedStreamDoesNotHoldItsSlotForever(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)

	func() {
		stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "watch=1,hang"})
		require.NoError(t, err)
		_, err = stream.Recv()
		require.NoError(t, err)
	}()
	require.ErrorIs(t, check(client, ""), httpbreaker.ErrOverloaded, "held while reachable")
	waitFor(t, "the dropped stream's slot comes back", func() bool { return rt.Status(srv.addr).InFlight == 0 })
	require.NoError(t, check(client, ""))
}

// A stream whose expired deadline ends it fails, whether or not the
// caller reads it again.
func TestAStreamWhoseDeadlineExpiresFails(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "watch=1,hang"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
	waitFor(t, "the expired stream is judged", func() bool { return rt.IsOpen(srv.addr) })
	assert.Equal(t, httpbreaker.Counts{Requests: 1, Failures: 1}, rt.Status(srv.addr).Total)
}

func TestAServerKilledMidStreamFailsIt(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "watch=1,hang"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)

	srv.srv.Stop()
	_, err = stream.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))
	assert.True(t, rt.IsOpen(srv.addr))
	require.ErrorIs(t, check(client, ""), httpbreaker.ErrCircuitOpen, "refused, not dialed to a dead server")
}

// Half-open, a stream can be the probe: it holds the probe's place until
// it ends, and its good end closes the circuit.
func TestAStreamCanBeTheProbe(t *testing.T) {
	clock := newClock()
	rt := newTransport(t, httpbreaker.WithClock(clock.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: time.Second}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	require.Error(t, check(client, "code=Unavailable"))
	clock.Advance(time.Second)

	stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "watch=1,OK"})
	require.NoError(t, err, "the probe")
	err = check(client, "")
	require.ErrorIs(t, err, httpbreaker.ErrCircuitOpen, "one probe at a time")
	var open *httpbreaker.OpenError
	require.ErrorAs(t, err, &open)
	assert.Equal(t, httpbreaker.StateHalfOpen, open.State)
	assert.Empty(t, status.Convert(err).Details(), "no retry time promised while half-open")

	for err == nil || !errors.Is(err, io.EOF) {
		_, err = stream.Recv()
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	assert.True(t, rt.IsClosed(srv.addr))
	require.NoError(t, check(client, ""))
}

// An interceptor after ours that panics: the call tells nothing, and its
// slot comes back.
func TestAPanickingCallGivesItsSlotBack(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	srv := startServer(t)
	panics := func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
		panic("a bug further down")
	}
	client := dial(t, srv.addr, nil, grpc.WithChainUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt), panics))
	require.Panics(t, func() { _ = check(client, "") })
	assert.Equal(t, 0, rt.Status(srv.addr).InFlight)
	assert.Equal(t, httpbreaker.Counts{Requests: 1, Ignored: 1}, rt.Status(srv.addr).Total)
}

// Calls and streams race every control call; -race checks the rest, and
// every admission ends.
func TestTrafficRacesTheControls(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 5, MaxConcurrent: 8}))
	srv := startServer(t)
	client := dial(t, srv.addr, rt)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if w%2 == 0 {
					_ = check(client, []string{"", "code=Unavailable", "code=NotFound"}[i%3])
					continue
				}
				stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "watch=2,OK"})
				for err == nil {
					_, err = stream.Recv()
				}
			}
		}()
	}
	for i := range 200 {
		switch i % 4 {
		case 0:
			rt.ClearState(srv.addr)
		case 1:
			rt.Isolate(srv.addr)
		case 2:
			_ = rt.Snapshot()
		case 3:
			rt.ClearState(srv.addr)
		}
	}
	stop()
	wg.Wait()
	waitFor(t, "every admission ends", func() bool { return rt.Status(srv.addr).InFlight == 0 })
}

// A stream that is not server-streaming (here Check, called as gRPC's
// Invoke calls it) ends at its one reply.
func TestAStreamThatIsNotServerStreamingEndsAtItsReply(t *testing.T) {
	rt := newTransport(t, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	srv := startServer(t)
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(rt)))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := conn.NewStream(context.Background(), &grpc.StreamDesc{StreamName: "Check"}, "/grpc.health.v1.Health/Check")
	require.NoError(t, err)
	require.NoError(t, stream.SendMsg(&healthpb.HealthCheckRequest{}))
	require.NoError(t, stream.CloseSend())
	assert.Equal(t, 1, rt.Status(srv.addr).InFlight)
	require.NoError(t, stream.RecvMsg(new(healthpb.HealthCheckResponse)))
	assert.Equal(t, 0, rt.Status(srv.addr).InFlight, "ended at the reply")
	assert.Equal(t, httpbreaker.Counts{Requests: 1, Successes: 1}, rt.Status(srv.addr).Total)
	runtime.KeepAlive(stream)
}
