package httpbreaker

import (
	"context"
	"errors"
	"time"
)

// Store shares circuits across a fleet: every Transport that uses one Store
// (one redisstore over one Redis, say) behaves like one breaker per host.
// Without a Store each Transport keeps its circuits in memory.
//
// A Transport calls its Store only off the healthy path — after a failure,
// on the first success after failures, when a circuit opens or closes, and
// to ask for a probe — so a stream of successful requests costs the Store
// nothing. Each method must return promptly; on an error the Transport
// goes on with its own local breaker, so no request fails because of the
// Store.
type Store interface {
	// Failure records a failure of host and returns the fleet's run of
	// consecutive failures and, if the fleet's circuit is open, that
	// opening (fleet.Open false if not).
	Failure(ctx context.Context, host string) (failures int, fleet FleetEvent, err error)
	// Success ends the fleet's run of failures of host.
	Success(ctx context.Context, host string) error
	// Open opens host's circuit for the fleet until the given time, or
	// until Reset if it is zero (isolation), and tells every member.
	Open(ctx context.Context, host string, until time.Time) error
	// Reset closes host's circuit for the fleet, forgets its failures and
	// tells every member.
	Reset(ctx context.Context, host string) error
	// AcquireProbe takes one of slots probe leases of host's half-open
	// circuit; ok is false when all are taken. A lease expires by itself,
	// so a member that dies mid-probe cannot wedge the fleet.
	AcquireProbe(ctx context.Context, host string, slots int) (lease string, ok bool, err error)
	// ReleaseProbe gives a lease back.
	ReleaseProbe(ctx context.Context, host, lease string) error
	// Subscribe makes the Store deliver the fleet's openings and closings,
	// the Transport's own included, to f until the Store is closed.
	Subscribe(f func(FleetEvent))
}

// FleetEvent is an opening or closing a Store delivers.
type FleetEvent struct {
	// Host is the breaker key.
	Host string
	// Open is true for an opening, false for a closing.
	Open bool
	// Until is when an opening ends; zero for an isolation.
	Until time.Time
}

// WithStore shares the Transport's circuits through s. The Transport
// subscribes to s when made; closing s is the caller's business.
func WithStore(s Store) Option {
	return func(c *config) error {
		if s == nil {
			return errors.New("httpbreaker: WithStore(nil)")
		}
		c.store = s
		return nil
	}
}

// storeTimeout bounds what the Transport waits for its Store; a Store
// should bound its own operations more tightly.
const storeTimeout = time.Second

func storeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}
