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
