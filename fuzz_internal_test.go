package httpbreaker

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"api.example.com", "API.example.com:443", "https://user:pw@Api.Example.com:443/x?q#f",
		"[::1]:8080", "::1", "fe80::1%en0", "http://[fe80::1%25en0]:80/", "host:", ":", "", "://", "a@b@c", "h:80:80",
		"http:opaque", "[", "]", "%zz", "http://%41/", "\x00", "é.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key := normalizeHost(s)
		if again := normalizeHost(key); again != key {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, key, again)
		}
		_ = withoutDefaultPort(key)
		if strings.ContainsAny(key, "/?#@") && !strings.HasPrefix(key, "[") {
			t.Fatalf("%q kept a path, query or userinfo: %q", s, key)
		}
	})
}

// FuzzKeysAgree checks that a request's key is found again from its URL,
// its host:port and its host alone.
func FuzzKeysAgree(f *testing.F) {
	for _, s := range []string{"https://API.example.com:443/x", "http://127.0.0.1:8080/", "http://[::1]:80/", "https://h/", "http://a.b:443/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return
		}
		key := requestKey(u)
		if key == "" {
			return
		}
		if got := normalizeHost(u.String()); got != key {
			t.Fatalf("URL %q: key %q, but normalizeHost gives %q", raw, key, got)
		}
		if got := normalizeHost(key); got != key {
			t.Fatalf("key %q is not its own normal form (%q)", key, got)
		}
		if strings.EqualFold(u.Scheme, "https") && u.Port() == "" && !strings.HasSuffix(u.Host, ":") {
			if got := normalizeHost(u.Host + ":443"); got != key && withoutDefaultPort(got) != key {
				t.Fatalf("host:443 of %q does not find %q (%q)", raw, key, got)
			}
		}
	})
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "-1", "Mon, 23 Nov 2026 12:01:00 GMT", "Monday, 23-Nov-26 12:02:00 GMT",
		"Mon Nov 23 12:03:00 2026", "99999999999999999999", "9223372036", " 5", "1e3", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		at, ok := retryAfter(http.Header{"Retry-After": {v}}, now)
		if ok && !at.After(now) {
			t.Fatalf("%q: a usable Retry-After in the past: %v", v, at)
		}
		if !ok && !at.IsZero() {
			t.Fatalf("%q: unusable but an instant: %v", v, at)
		}
	})
}

func FuzzMethods(f *testing.F) {
	for _, s := range []string{"GET", "PURGE", "get", "", "BAD METHOD", "G(ET", "GÉT", "\x7f"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, allowed, method string) {
		table, err := newMethodTable([]string{allowed})
		if err != nil {
			standardMisspelled := strings.ToUpper(allowed) != allowed && slices.Contains(DefaultMethods, strings.ToUpper(allowed))
			if isToken(allowed) && !standardMisspelled {
				t.Fatalf("%q is a token but was refused: %v", allowed, err)
			}
			return
		}
		want := method == allowed || (method == "" && allowed == "GET")
		if got := table.allows(method); got != want {
			t.Fatalf("table %q allows(%q) = %v", allowed, method, got)
		}
	})
}
