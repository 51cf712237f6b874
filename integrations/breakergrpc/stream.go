package breakergrpc

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/httpbreaker/httpbreaker"
)

// stream is an admitted stream, judged once when it ends. done is the
// admission's (it acts once); stop unregisters the watch on the context.
type stream struct {
	grpc.ClientStream
	ctx           context.Context
	c             *config
	done          func(httpbreaker.Outcome)
	stop          func() bool
	serverStreams bool
}

// newStream wraps cs and watches ctx: a stream whose context ends before
// it was read to the end is judged then — Canceled ignored, an expired
// deadline a failure — since gRPC ends it without telling the caller's
// stream until its next call.
func newStream(ctx context.Context, cs grpc.ClientStream, desc *grpc.StreamDesc, c *config, done func(httpbreaker.Outcome)) *stream {
	s := &stream{ClientStream: cs, ctx: ctx, c: c, done: done, serverStreams: desc.ServerStreams}
	s.stop = context.AfterFunc(ctx, func() {
		done(c.outcome(ctx, status.FromContextError(ctx.Err()).Err()))
	})
	return s
}

// end judges the stream by its first error (nil for a clean end).
func (s *stream) end(err error) {
	s.stop()
	s.done(s.c.outcome(s.ctx, err))
}

// RecvMsg ends the stream on io.EOF (a success), on any other error, and
// after the one reply of a stream that is not server-streaming.
func (s *stream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case errors.Is(err, io.EOF):
		s.end(nil)
	case err != nil:
		s.end(err)
	case !s.serverStreams:
		s.end(nil)
	}
	return err
}

// SendMsg ends the stream on an error other than io.EOF, which gRPC
// returns when the server ended the stream and RecvMsg will tell how.
func (s *stream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.end(err)
	}
	return err
}
