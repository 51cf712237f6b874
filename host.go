package httpbreaker

// A host's record is its breaker (breaker.go), which the registry keeps
// per key. What few hosts need hangs off it in hostMore: the events their
// listeners have yet to hear, the failure-rate window, the fleet's part,
// and the state of the rules beyond the circuit (rules.go), which the
// breaker never names.

import (
	"strings"
	"sync/atomic"
	"unsafe"
)

// hostMore is a host's rarely needed parts. A host whose policy has no
// Window and no rule gets it at its first transition, under the breaker's
// mu; otherwise it is made with the host and its rules are then only read.
type hostMore struct {
	// events are the host's news for listeners (transition.go). Requires
	// the breaker's mu.
	events eventQueue
	// window counts outcomes for the failure-rate rule and the retry
	// budget; nil when neither is on.
	window *rateWindow
	// fleet is the host's part of the fleet protocol (fleet.go); unused
	// without a Store.
	fleet fleetHost
	// rules are the host's state for each rule the policy turns on.
	rules hostRules
	// episode is the circuit's beyond its state word (breaker.go).
	episode episode
	// rejected counts the host's refusals (Counts.Rejected).
	rejected atomic.Uint64
}

// rejected counts a refusal. A host refuses only once its circuit has left
// closed or under a rule that refuses, so its more is made by then.
func (b *breaker) rejected() { b.more.rejected.Add(1) }

// newHost makes the record of a host, closed, with the parts its policy
// needs at once.
func newHost(key string, s *shared) *breaker {
	b := newBreaker(key)
	if !s.counts && !s.hosted {
		return b
	}
	m := new(hostMore)
	if s.counts {
		m.window = new(rateWindow)
	}
	m.rules.init(key, s)
	b.more = m
	return b
}

// hostStatus describes the host: its circuit, then each rule's part.
func (b *breaker) hostStatus(s *shared) HostStatus {
	st := b.status(s)
	if s.hosted { // more was made with the host
		b.more.rules.status(s, &st)
	}
	return st
}

// clearRules empties what the rules learned of the host (ClearState).
func (b *breaker) clearRules(s *shared) {
	if s.hosted {
		b.more.rules.reset(s)
	}
}

// newBreaker makes a breaker for key with a copy of key of its own, so that
// a key cut from a request's URL never pins that URL. The key is copied
// into the breaker's own allocation, in a bucket that fills a 128- or
// 256-byte size class with the 80-byte breaker: a new host costs one
// allocation, and sits on 128-byte boundaries, sharing no cache line with
// another (breaker.go). A key longer than 168 bytes gets an allocation of
// its own. The key's bytes are never written again; a key kept after its
// host is forgotten keeps the breaker's memory, as any interior pointer
// does.
func newBreaker(key string) *breaker {
	switch n := len(key); {
	case n <= 40: // most hosts
		return withKey[[40]byte](key) // 128 bytes
	case n <= 168:
		return withKey[[168]byte](key) // 256
	}
	b := withKey[[40]byte]("")
	b.host = strings.Clone(key)
	return b
}

// keyed is the bytes of a key and its breaker, one allocation of a 128- or
// 256-byte size class: the key and the breaker's read-mostly words (state,
// lastUsed, forgotten, more) fill the cache lines before the one of the
// counters every call adds to, so that calls to one host on several cores
// move one line, once per call, as an atomic counter alone would.
type keyed[K [40]byte | [168]byte] struct {
	key K
	b   breaker
}

// withKey makes a breaker whose key is copied into its own allocation.
func withKey[K [40]byte | [168]byte](key string) *breaker {
	x := new(keyed[K])
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&x.key)), unsafe.Sizeof(x.key))
	n := copy(buf, key)
	x.b.host = unsafe.String(&buf[0], n)
	return &x.b
}
