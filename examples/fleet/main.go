// Command fleet runs four members of a fleet against one failing upstream,
// first each with its own breaker, then sharing their breakers through
// Redis, and prints side by side how many calls reached the upstream before
// every member refused, and how many probes went through after the reset
// timeout.
//
// It uses REDIS_URL (redis://host:port) if set, or starts a redis-server of
// its own on a free loopback port.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/redisstore"
)

const (
	members   = 4
	threshold = 5
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run() error {
	url, stop, err := redisURL()
	if err != nil {
		return err
	}
	defer stop()
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	local, err := scenario(nil)
	if err != nil {
		return err
	}
	shared, err := scenario(opts)
	if err != nil {
		return err
	}
	fmt.Printf("%d members, one failing upstream, FailureThreshold %d, HalfOpenMaxRequests 1\n\n", members, threshold)
	fmt.Printf("%-42s %16s %22s\n", "", "local breakers", "shared through Redis")
	fmt.Printf("%-42s %16d %22d\n", "upstream calls until every member refused", local.toOpen, shared.toOpen)
	fmt.Printf("%-42s %16d %22d\n", "probes after the reset timeout", local.probes, shared.probes)
	fmt.Printf("\nShared, the fleet trips after at most %d calls (threshold + members - 1) and sends one probe.\n",
		threshold+members-1)
	return nil
}

type result struct{ toOpen, probes int64 }

// scenario runs the fleet, sharing through Redis if opts is not nil.
func scenario(opts *redis.Options) (result, error) {
	var calls atomic.Int64
	hold := make(chan struct{})
	var probing atomic.Bool
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		if probing.Load() {
			<-hold // keep the probes in flight until every member has tried
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	now := time.Now()
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	fleet := make([]*httpbreaker.Transport, members)
	for i := range fleet {
		options := []httpbreaker.Option{
			httpbreaker.WithClock(clock),
			httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: threshold, ResetTimeout: time.Minute}),
		}
		if opts != nil {
			client := redis.NewClient(opts)
			defer client.Close()
			store, err := redisstore.New(client, redisstore.WithClock(clock), redisstore.WithPrefix("fleet-demo"))
			if err != nil {
				return result{}, err
			}
			defer store.Close()
			options = append(options, httpbreaker.WithStore(store))
		}
		rt, err := httpbreaker.New(nil, options...)
		if err != nil {
			return result{}, err
		}
		defer rt.CloseIdleConnections()
		fleet[i] = rt
	}
	get := func(rt *httpbreaker.Transport) error {
		req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	// Round robin until every member refuses.
	for open := 0; open < members; {
		open = 0
		for _, rt := range fleet {
			if get(rt) != nil {
				open++
			}
		}
	}
	var r result
	r.toOpen = calls.Load()

	// After the reset timeout, every member tries at once.
	clockMu.Lock()
	now = now.Add(time.Minute)
	clockMu.Unlock()
	probing.Store(true)
	before := calls.Load()
	var wg sync.WaitGroup
	for _, rt := range fleet {
		wg.Add(1)
		go func() { defer wg.Done(); _ = get(rt) }()
	}
	time.Sleep(200 * time.Millisecond) // a demo, not a test: let every member try before the probes answer
	r.probes = calls.Load() - before
	close(hold)
	wg.Wait()
	return r, nil
}

// redisURL returns REDIS_URL, or starts a redis-server of its own.
func redisURL() (string, func(), error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		return url, func() {}, nil
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("set REDIS_URL or install redis-server (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dir, err := os.MkdirTemp("", "fleet-demo")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer client.Close()
	for deadline := time.Now().Add(10 * time.Second); client.Ping(context.Background()).Err() != nil; {
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "redis://127.0.0.1:" + port, stop, nil
}
