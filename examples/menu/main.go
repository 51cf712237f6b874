// Command menu is a restaurant's website: it fetches its menu from a
// kitchen service through an http.Client wrapped by httpbreaker. When the
// kitchen's database goes down, httpbreaker's stale-if-error cache answers
// with the last good menu, marked stale; once the circuit opens it does so
// without calling the kitchen. After the reset timeout a probe finds the
// kitchen back and the circuit closes.
package main

import (
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

	site := &website{url: k.url, kitchen: k, out: out}
	rt, err := httpbreaker.New(nil,
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: resetTimeout}),
		httpbreaker.WithStaleIfError(1<<20), // keep up to 1 MiB of last good menus
		httpbreaker.WithClock(clk.Now),
		httpbreaker.WithOnStateChange(func(_ string, from, to httpbreaker.State) {
			site.note(fmt.Sprintf("      (kitchen circuit: %s -> %s)", from, to))
		}))
	if err != nil {
		return err
	}
	defer rt.Close()
	site.client = &http.Client{Transport: rt, Timeout: 5 * time.Second}

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
	client  *http.Client
	url     string
	kitchen *kitchen
	out     io.Writer
	views   int
	notes   []string // what the circuit did during the view, printed after it
}

// note keeps a line about the circuit for the end of the current view: the
// listener runs during the view's request, before the view is printed.
func (s *website) note(line string) { s.notes = append(s.notes, line) }

func (s *website) show() {
	s.views++
	defer func() {
		for _, line := range s.notes {
			fmt.Fprintln(s.out, line)
		}
		s.notes = nil
	}()
	before := s.kitchen.served.Load()
	resp, err := s.client.Get(s.url)
	called := s.kitchen.served.Load() > before
	if err != nil { // refused or failed with nothing kept: ErrCircuitOpen, say
		fmt.Fprintf(s.out, "[%d] no menu to show: %v\n", s.views, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		fmt.Fprintf(s.out, "[%d] reading the menu: %v\n", s.views, err)
	case resp.Header.Get("Warning") != "" && called:
		fmt.Fprintf(s.out, "[%d] the kitchen failed; last good menu (stale): %s\n", s.views, body)
	case resp.Header.Get("Warning") != "":
		fmt.Fprintf(s.out, "[%d] circuit open, kitchen not called; last good menu (stale): %s\n", s.views, body)
	case resp.StatusCode != http.StatusOK:
		fmt.Fprintf(s.out, "[%d] kitchen answered %d and no menu was kept\n", s.views, resp.StatusCode)
	default:
		fmt.Fprintf(s.out, "[%d] fresh menu: %s\n", s.views, body)
	}
}
