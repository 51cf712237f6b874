package main

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// kitchen is the restaurant's menu service: it serves the menu from its
// database, or 503 while the database is down. It counts the requests that
// reach it, to show how many the breaker spared it.
type kitchen struct {
	dishes atomic.Value // []string
	down   atomic.Bool
	served atomic.Int64
	server *http.Server
	url    string
}

// openKitchen starts the menu service on a loopback port.
func openKitchen(dishes ...string) (*kitchen, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &kitchen{url: "http://" + ln.Addr().String() + "/menu"}
	k.dishes.Store(dishes)
	k.server = &http.Server{Handler: http.HandlerFunc(k.serveMenu)}
	go func() { _ = k.server.Serve(ln) }()
	return k, nil
}

func (k *kitchen) serveMenu(w http.ResponseWriter, _ *http.Request) {
	k.served.Add(1)
	if k.down.Load() {
		http.Error(w, "menu database unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(k.dishes.Load().([]string), ", ")))
}

func (k *kitchen) close() error { return k.server.Close() }
