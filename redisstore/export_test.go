package redisstore

import (
	"context"
	"time"
)

// SetIsolationCheck sets how often s rechecks the isolations its
// subscribers hold (10 quiet waits by default), so a test need not wait.
func SetIsolationCheck(s *Store, every time.Duration) { s.recheckEvery = every }

// Run runs op as every operation of s runs: bounded by the timeout, on a
// goroutine of its own.
func Run(s *Store, ctx context.Context, op func(context.Context) error) error { return s.run(ctx, op) }
