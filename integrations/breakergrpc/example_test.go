package breakergrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakergrpc"
)

// A gRPC upstream under the same circuits as HTTP hosts: when it goes
// away its circuit opens, and calls are refused without dialing, with
// status Unavailable.
func ExampleUnaryClientInterceptor() {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)

	rt, _ := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	defer rt.Close()
	conn, _ := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(breakergrpc.UnaryClientInterceptor(rt)),
		grpc.WithStreamInterceptor(breakergrpc.StreamClientInterceptor(rt)))
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	key := breakergrpc.TargetKey(conn.Target())

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err, rt.State(key))

	srv.Stop() // the upstream goes away
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(status.Code(err), rt.State(key))

	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(status.Code(err) == codes.Unavailable, errors.Is(err, httpbreaker.ErrCircuitOpen))
	// Output:
	// SERVING <nil> closed
	// Unavailable open
	// true true
}
