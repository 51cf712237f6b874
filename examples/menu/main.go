// Command menu is the seed's restaurant: a website fetches its menu from a
// kitchen service through an http.Client wrapped by httpbreaker. When the
// kitchen's database goes down, the circuit opens and the site keeps
// showing the last good menu, marked stale, without calling the kitchen;
// after the reset timeout a probe finds the kitchen back and the circuit
// closes.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/httpbreaker/httpbreaker"
)

func main() {
	if err := run(os.Stdout, realClock{}); err != nil {
		fmt.Fprintln(os.Stderr, "menu:", err)
		os.Exit(1)
	}
}

// clock is what the demo waits on: real time in main, a fake in the test.
type clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

const resetTimeout = 2 * time.Second

func run(out io.Writer, clk clock) error {
	k, err := openKitchen("Tomato soup", "Sourdough bread", "Apple pie")
	if err != nil {
		return err
	}
	defer k.close()

	cache := &lastGood{}
	rt, err := httpbreaker.New(nil,
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: resetTimeout}),
		httpbreaker.WithFallback(cache.fallback),
		httpbreaker.WithClock(clk.Now),
		httpbreaker.WithOnStateChange(func(_ string, from, to httpbreaker.State) {
			fmt.Fprintf(out, "      (kitchen circuit: %s -> %s)\n", from, to)
		}))
	if err != nil {
		return err
	}
	site := &website{client: &http.Client{Transport: rt, Timeout: 5 * time.Second}, url: k.url, cache: cache, out: out}
	defer site.client.CloseIdleConnections()

	fmt.Fprintf(out, "The restaurant's website fetches its menu through httpbreaker\n"+
		"(the circuit opens after 3 failures and lets a probe through after %v).\n\n", resetTimeout)
	site.show()
	fmt.Fprintln(out, "\n-- the kitchen's menu database goes down --")
	k.down.Store(true)
	for range 5 {
		site.show()
	}
	fmt.Fprintf(out, "\n-- the database is back; the site waits %v for the reset timeout --\n", resetTimeout)
	k.dishes.Store([]string{"Tomato soup", "Sourdough bread", "Apple pie", "Lemon tart"})
	k.down.Store(false)
	clk.Sleep(resetTimeout)
	site.show()
	site.show()

	fmt.Fprintf(out, "\nThe kitchen got %d requests for %d page views: the breaker spared it %d while it was down.\n",
		k.served.Load(), site.views, site.views-int(k.served.Load()))
	return nil
}

// website shows the menu on each page view.
type website struct {
	client *http.Client
	url    string
	cache  *lastGood
	out    io.Writer
	views  int
}

func (s *website) show() {
	s.views++
	resp, err := s.client.Get(s.url)
	switch {
	case errors.Is(err, httpbreaker.ErrCircuitOpen):
		fmt.Fprintf(s.out, "[%d] no menu to show: %v\n", s.views, err)
		return
	case err != nil:
		fmt.Fprintf(s.out, "[%d] kitchen unreachable (%v); last good menu (stale): %s\n", s.views, err, s.cache.get())
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		fmt.Fprintf(s.out, "[%d] reading the menu: %v\n", s.views, err)
	case resp.Header.Get(staleHeader) != "":
		fmt.Fprintf(s.out, "[%d] circuit open, kitchen not called; last good menu (stale): %s\n", s.views, body)
	case resp.StatusCode != http.StatusOK:
		fmt.Fprintf(s.out, "[%d] kitchen answered %d; last good menu (stale): %s\n", s.views, resp.StatusCode, s.cache.get())
	default:
		s.cache.remember(string(body))
		fmt.Fprintf(s.out, "[%d] fresh menu: %s\n", s.views, body)
	}
}
