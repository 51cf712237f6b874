package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock makes the demo's wait instant.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDemo(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out, &fakeClock{now: time.Unix(0, 0)}))
	want := `The restaurant's website fetches its menu through httpbreaker
(the circuit opens after 3 failures and lets a probe through after 2s).

[1] fresh menu: Tomato soup, Sourdough bread, Apple pie

-- the kitchen's menu database goes down --
[2] the kitchen failed; last good menu (stale): Tomato soup, Sourdough bread, Apple pie
[3] the kitchen failed; last good menu (stale): Tomato soup, Sourdough bread, Apple pie
[4] the kitchen failed; last good menu (stale): Tomato soup, Sourdough bread, Apple pie
      (kitchen circuit: closed -> open)
[5] circuit open, kitchen not called; last good menu (stale): Tomato soup, Sourdough bread, Apple pie
[6] circuit open, kitchen not called; last good menu (stale): Tomato soup, Sourdough bread, Apple pie

-- the database is back; the site waits 2s for the reset timeout --
[7] fresh menu: Tomato soup, Sourdough bread, Apple pie, Lemon tart
      (kitchen circuit: open -> half-open)
      (kitchen circuit: half-open -> closed)
[8] fresh menu: Tomato soup, Sourdough bread, Apple pie, Lemon tart

The kitchen got 6 requests for 8 page views: the breaker spared it 2 while it was down.
`
	assert.Equal(t, want, out.String())
}
