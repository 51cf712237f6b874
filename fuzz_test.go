package httpbreaker_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/httpbreaker/httpbreaker"
)

// FuzzRoundTrip sends requests with odd URLs: whatever the URL, the caller
// gets exactly one of a response and an error, the body is closed, and
// nothing panics.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"http://api.test/", "http:opaque", "http://[fe80::1%25en0]:80/", "http://user:pw@h/",
		"http:///nohost", "//h/x", "http://h:99999/", "http://%41:80/", "https://H/?q=1#f", "mailto:a@b", ""} {
		f.Add(s, "GET")
	}
	f.Fuzz(func(t *testing.T, raw, method string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		rt, err := httpbreaker.New(failingHosts("api.test"), httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			body := newBody("payload")
			req := &http.Request{Method: method, URL: u, Header: http.Header{}, Body: body, Host: u.Host}
			resp, err := rt.RoundTrip(req)
			if (resp == nil) == (err == nil) {
				t.Fatalf("%q %q: response %v, error %v", method, raw, resp, err)
			}
			if resp != nil {
				_ = resp.Body.Close()
			}
			if !body.closed.Load() {
				t.Fatalf("%q %q: request body left open", method, raw)
			}
			if err != nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(err.Error(), pw) {
					t.Fatalf("error %q carries the password", err)
				}
			}
		}
		_ = rt.State(raw)
		_ = rt.Status(raw)
		rt.ClearState(raw)
	})
}
