package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
)

// lastGood keeps the last menu fetched successfully — the seed's "last
// successfully fetched menu" — and serves it, marked stale, when the
// breaker refuses to call the kitchen.
type lastGood struct {
	mu   sync.Mutex
	menu string
}

func (c *lastGood) remember(menu string) {
	c.mu.Lock()
	c.menu = menu
	c.mu.Unlock()
}

func (c *lastGood) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.menu
}

// staleHeader marks a response that came from the cache, not the kitchen.
const staleHeader = "X-Menu-Stale"

// fallback is an httpbreaker.Fallback: the cached menu, or the refusal
// itself when nothing was ever fetched.
func (c *lastGood) fallback(req *http.Request, err error) (*http.Response, error) {
	menu := c.get()
	if menu == "" {
		return nil, err
	}
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{staleHeader: {"circuit open"}, "Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(menu)),
		ContentLength: int64(len(menu)),
		Request:       req,
	}, nil
}
