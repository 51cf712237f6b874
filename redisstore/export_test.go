package redisstore

import "time"

// SetIsolationCheck sets how often s rechecks the isolations its
// subscribers hold (10 quiet waits by default), so a test need not wait.
func SetIsolationCheck(s *Store, every time.Duration) { s.recheckEvery = every }
