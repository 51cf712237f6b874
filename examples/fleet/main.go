// Command fleet runs four members of a fleet, each with its own breaker
// and then sharing their breakers through Redis (under the default quorum
// of 2, and under a quorum of 1), in two scenes: an upstream failing for
// everyone, then one member whose own network is broken beside three
// healthy ones. It prints side by side how many calls reached the failing
// upstream before every member refused, how many probes went through after
// the reset timeout, and how many of the healthy members' calls the sick
// member got refused.
//
// It uses REDIS_URL (redis://host:port) if set, or starts a redis-server of
// its own on a free loopback port.
package main

import (
	"context"
	"errors"
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
	rounds    = 20 // calls per member in the sick-member scene
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// setup is how the members share their breakers: not at all, or through
// Redis under a quorum.
type setup struct {
	name   string
	redis  *redis.Options // nil: local breakers
	quorum int
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
	setups := []setup{{"local breakers", nil, 0}, {"Redis, quorum 2", opts, 2}, {"Redis, quorum 1", opts, 1}}
	var outages, sick []result
	for i, s := range setups {
		r, err := outage(s, fmt.Sprintf("fleet-demo-%d-outage", i))
		if err != nil {
			return err
		}
		outages = append(outages, r)
		if r, err = sickMember(s, fmt.Sprintf("fleet-demo-%d-sick", i)); err != nil {
			return err
		}
		sick = append(sick, r)
	}
	fmt.Printf("%d members, FailureThreshold %d, HalfOpenMaxRequests 1; quorum 2 is redisstore's default\n\n", members, threshold)
	row := func(label string, cells ...any) {
		fmt.Printf("%-46s", label)
		for _, c := range cells {
			fmt.Printf(" %16v", c)
		}
		fmt.Println()
	}
	row("", setups[0].name, setups[1].name, setups[2].name)
	fmt.Println("the upstream fails for every member")
	row("  upstream calls until every member refused", outages[0].toOpen, outages[1].toOpen, outages[2].toOpen)
	row("  probes after the reset timeout", outages[0].probes, outages[1].probes, outages[2].probes)
	fmt.Printf("one member's own network fails, three are healthy (%d calls each)\n", rounds)
	row("  healthy members' calls refused", sick[0].refused, sick[1].refused, sick[2].refused)
	fmt.Printf("\nUnder a quorum of 2 a host opens for the fleet only when two members each see it failing:\n" +
		"the sick member opens alone, the others go on. A quorum of 1 (any member) trips the fleet\n" +
		"on the fewest calls, and lets one sick member open a healthy host for all.\n")
	return nil
}

type result struct{ toOpen, probes, refused int64 }

// fleet makes the members, all keyed on one host so that a member can call
// it through an address of its own, sharing through Redis if s says so.
// The returned func closes what it made.
func fleet(s setup, prefix string, clock func() time.Time) ([]*httpbreaker.Transport, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	rts := make([]*httpbreaker.Transport, members)
	for i := range rts {
		options := []httpbreaker.Option{
			httpbreaker.WithClock(clock),
			httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: threshold, ResetTimeout: time.Minute}),
			httpbreaker.WithKeyFunc(func(*http.Request) string { return "menu.example" }),
		}
		if s.redis != nil {
			client := redis.NewClient(s.redis)
			closers = append(closers, func() { _ = client.Close() })
			store, err := redisstore.New(client, redisstore.WithClock(clock), redisstore.WithPrefix(prefix),
				redisstore.WithQuorum(s.quorum))
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			closers = append(closers, func() { _ = store.Close() })
			options = append(options, httpbreaker.WithStore(store))
		}
		rt, err := httpbreaker.New(nil, options...)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, func() { _ = rt.Close(); rt.CloseIdleConnections() })
		rts[i] = rt
	}
	return rts, closeAll, nil
}

// get sends one GET through rt and closes the body.
func get(rt *httpbreaker.Transport, url string) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := rt.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// outage runs the members in turn against an upstream failing for all
// until every member refuses, then lets every member try at once after
// the reset timeout.
func outage(s setup, prefix string) (result, error) {
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
	rts, closeAll, err := fleet(s, prefix, clock)
	if err != nil {
		return result{}, err
	}
	defer closeAll()
	for open := 0; open < members; { // round robin until every member refuses
		open = 0
		for _, rt := range rts {
			if get(rt, upstream.URL) != nil {
				open++
			}
		}
	}
	var r result
	r.toOpen = calls.Load()

	clockMu.Lock()
	now = now.Add(time.Minute)
	clockMu.Unlock()
	probing.Store(true)
	before := calls.Load()
	var wg sync.WaitGroup
	for _, rt := range rts {
		wg.Add(1)
		go func() { defer wg.Done(); _ = get(rt, upstream.URL) }()
	}
	time.Sleep(200 * time.Millisecond) // a demo, not a test: let every member try before the probes answer
	r.probes = calls.Load() - before
	close(hold)
	wg.Wait()
	return r, nil
}

// sickMember runs the members in turn against a healthy upstream; member
// 0 calls it through an address that refuses connections, as a member
// whose own network is broken would.
func sickMember(s setup, prefix string) (result, error) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer upstream.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rts, closeAll, err := fleet(s, prefix, time.Now)
	if err != nil {
		return result{}, err
	}
	defer closeAll()
	var r result
	for range rounds {
		for i, rt := range rts {
			if i == 0 {
				_ = get(rt, dead)
				continue
			}
			if errors.Is(get(rt, upstream.URL), httpbreaker.ErrCircuitOpen) {
				r.refused++
			}
		}
	}
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
