package breakergrpc

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/httpbreaker/httpbreaker"
)

// DefaultCodeClassifier counts the codes that say the target is unwell as
// failures — Unavailable, DeadlineExceeded (a deadline the caller set that
// expires fails, as a timed-out HTTP request does), Internal,
// ResourceExhausted, DataLoss and Unknown (what an error without a status
// gets) — and ignores Canceled, the caller's own doing. Every other code,
// Unimplemented and InvalidArgument among them, is the server answering:
// a success for the circuit.
func DefaultCodeClassifier(c codes.Code) httpbreaker.Outcome {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal,
		codes.ResourceExhausted, codes.DataLoss, codes.Unknown:
		return httpbreaker.Failure
	case codes.Canceled:
		return httpbreaker.Ignore
	}
	return httpbreaker.Success
}

// refused turns what Transport.Allow refused with into the call's error: a
// circuit's or an overload's refusal becomes a [RefusedError]; a context
// that ended while the call waited (for a fleet's probe lease) becomes the
// status gRPC gives such a call; anything else (a misused Transport) comes
// back as it is.
func refused(err error) error {
	var open *httpbreaker.OpenError
	var over *httpbreaker.OverloadError
	switch {
	case errors.As(err, &open), errors.As(err, &over):
		return &RefusedError{err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return err
}

// A RefusedError is a call the circuit refused, never sent. Its gRPC
// status is Unavailable — status.Code(err) says so, and gRPC's own retry
// and a server relaying it treat it as any unavailable upstream — with a
// RetryInfo detail when the circuit knows when it will admit a probe. It
// unwraps to the [*httpbreaker.OpenError] or [*httpbreaker.OverloadError],
// so errors.Is(err, httpbreaker.ErrCircuitOpen) (or ErrOverloaded) holds.
type RefusedError struct {
	err error
}

func (e *RefusedError) Error() string { return e.err.Error() }

// Unwrap returns the circuit's refusal.
func (e *RefusedError) Unwrap() error { return e.err }

// GRPCStatus is the refusal as a gRPC status: codes.Unavailable, the
// refusal's message and, for an open circuit whose probe time is known, a
// RetryInfo detail with the time left until then by the wall clock.
func (e *RefusedError) GRPCStatus() *status.Status {
	s := status.New(codes.Unavailable, e.err.Error())
	var open *httpbreaker.OpenError
	if errors.As(e.err, &open) && open.State == httpbreaker.StateOpen && !open.RetryAt.IsZero() {
		wait := max(time.Until(open.RetryAt), 0)
		if detailed, err := s.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
			return detailed
		}
	}
	return s
}
