// Command status serves httpbreaker's status page for a client that calls
// a few local services, some of them flaky, so you can watch circuits open,
// probe and close — and isolate or clear hosts with the page's buttons.
//
//	go run ./examples/status            # until Ctrl-C
//	go run ./examples/status -for 30s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/statuspage"
)

func main() {
	runFor := flag.Duration("for", 0, "stop after this long (0: until interrupted)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(1)
	}
}

// upstream is a local service that fails with the given probability.
func upstream(failRate float64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if rand.Float64() < failRate {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
}

func run(ctx context.Context) error {
	services := map[string]*httptest.Server{
		"menu":     upstream(0),
		"payments": upstream(0.7),
		"maps":     upstream(0.2),
		"reviews":  upstream(0.95),
	}
	for _, s := range services {
		defer s.Close()
	}
	// The services get names: a request to http://payments.local/ is dialled
	// to the payments server, so the page lists hosts people can read.
	dialer := &net.Dialer{}
	base := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		name, _, _ := net.SplitHostPort(addr)
		if s, ok := services[strings.TrimSuffix(name, ".local")]; ok {
			addr = s.Listener.Addr().String()
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	rt, err := httpbreaker.New(base,
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: 5 * time.Second}))
	if err != nil {
		return err
	}
	client := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	page := &http.Server{Handler: mustPage(rt)}
	go func() { _ = page.Serve(ln) }()
	defer page.Close()
	fmt.Printf("status page: http://%s/  (JSON: curl -H 'Accept: application/json' http://%s/)\n", ln.Addr(), ln.Addr())
	fmt.Println("calling menu.local, payments.local, maps.local and reviews.local five times a second; Ctrl-C stops")

	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for name := range services {
			if resp, err := client.Get("http://" + name + ".local/"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	}
}

// mustPage is the status page with its controls, refreshing every second.
// The page listens on loopback only, and its controls act only for
// requests from this machine: a real program would check its operators'
// credentials here.
func mustPage(rt *httpbreaker.Transport) http.Handler {
	page, err := statuspage.New(rt, statuspage.WithControls(fromThisMachine), statuspage.WithRefresh(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	return page
}

// fromThisMachine authorizes requests whose peer is a loopback address.
func fromThisMachine(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}
