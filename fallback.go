package httpbreaker

import (
	"io"
	"net/http"
)

// Fallback answers a request the breaker refused, in place of err (an
// [*OpenError]). It may return a response — a cached copy, a default — or an
// error, its own or err. It runs after the request body was closed.
//
// Returning (nil, nil) is taken as returning err; returning both a response
// and an error is taken as the error, and the response body is closed.
type Fallback func(req *http.Request, err error) (*http.Response, error)

// maxDrain bounds how much of a swallowed response body is read so its
// connection can be reused; past it the connection is simply closed.
const maxDrain = 4 << 10

// discard drains (up to maxDrain bytes) and closes the body of a response
// the caller will never see.
func discard(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
}

// closeBody closes the request body, as a RoundTripper must even when it
// sends nothing.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// oneOf makes (resp, err) obey the RoundTripper contract: exactly one of
// them is non-nil. fallbackErr stands in when both are nil.
func oneOf(resp *http.Response, err, fallbackErr error) (*http.Response, error) {
	switch {
	case err != nil && resp != nil:
		discard(resp)
		return nil, err
	case err == nil && resp == nil:
		return nil, fallbackErr
	}
	return resp, err
}
