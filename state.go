package httpbreaker

import (
	"fmt"
	"strconv"
)

// State is the state of one host's circuit.
type State int

const (
	// StateClosed lets requests through and counts their failures.
	StateClosed State = iota
	// StateOpen refuses requests without sending them.
	StateOpen
	// StateHalfOpen lets a few probes through to test the host.
	StateHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the state as its name, so that JSON and logs read
// "open" rather than a number.
func (s State) MarshalText() ([]byte, error) {
	if s < StateClosed || s > StateHalfOpen {
		return nil, fmt.Errorf("httpbreaker: cannot encode %v", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a state's name.
func (s *State) UnmarshalText(text []byte) error {
	for _, st := range []State{StateClosed, StateOpen, StateHalfOpen} {
		if string(text) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("httpbreaker: unknown state %q", text)
}

// The breaker's state word packs, from the low bits up: the state (2 bits),
// the consecutive-failure count while closed (30 bits) and a generation
// (32 bits) that every transition increments. A call remembers the
// generation it was admitted in; its result counts only if the generation is
// still current, so a late result never lands in a newer state.
const (
	stateMask  = 1<<2 - 1
	countShift = 2
	countMask  = maxCount
	genShift   = 32
)

type word uint64

func packWord(s State, failures int, gen uint32) word {
	return word(s) | word(failures)<<countShift | word(gen)<<genShift
}

func (w word) state() State { return State(w & stateMask) }

func (w word) failures() int { return int(w >> countShift & countMask) }

func (w word) gen() uint32 { return uint32(w >> genShift) }

func (w word) withFailures(n int) word {
	return w&^(countMask<<countShift) | word(n)<<countShift
}

// maxCount bounds the count fields: the consecutive-failure count lives in
// 30 bits of the breaker's state word.
const maxCount = 1<<30 - 1

// load and cas read and swap a breaker's state word.
func (b *breaker) load() word { return word(b.state.Load()) }

func (b *breaker) cas(old, new word) bool {
	return b.state.CompareAndSwap(uint64(old), uint64(new))
}
