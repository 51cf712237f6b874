package httpbreaker

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRequestKey(t *testing.T) {
	for raw, want := range map[string]string{
		"https://API.example.com:443/x":  "api.example.com",
		"http://api.example.com:80":      "api.example.com",
		"http://api.example.com:443":     "api.example.com:443",
		"https://api.example.com:80":     "api.example.com:80",
		"http://127.0.0.1:8080":          "127.0.0.1:8080",
		"http://example.com:/":           "example.com",
		"http://[::1]:80/":               "[::1]",
		"http://[::1]:8080/":             "[::1]:8080",
		"https://[FE80::1%25en0]:8443/x": "[fe80::1%en0]:8443",
		"HTTPS://Example.COM:443":        "example.com",
	} {
		u, err := url.Parse(raw)
		if assert.NoError(t, err) {
			assert.Equal(t, want, requestKey(u), raw)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.com":            "api.example.com",
		" API.example.com ":          "api.example.com",
		"api.example.com:443":        "api.example.com:443",
		"api.example.com:":           "api.example.com",
		"api.example.com/menu?x#y":   "api.example.com",
		"user:pw@api.example.com":    "api.example.com",
		"https://api.example.com/x":  "api.example.com",
		"http://api.example.com:443": "api.example.com:443",
		"::1":                        "[::1]",
		"[::1]:8080":                 "[::1]:8080",
		"2001:DB8::1":                "[2001:db8::1]",
		"":                           "",
		"://":                        "",
		"http://%zz":                 "%zz",
	} {
		got := normalizeHost(in)
		assert.Equal(t, want, got, "%q", in)
		assert.Equal(t, got, normalizeHost(got), "idempotent for %q", in)
	}
	assert.Equal(t, "a.test", withoutDefaultPort("a.test:443"))
	assert.Equal(t, "a.test", withoutDefaultPort("a.test:80"))
	assert.Equal(t, "[::1]", withoutDefaultPort("[::1]:80"))
	assert.Equal(t, "", withoutDefaultPort("a.test:8080"))
	assert.Equal(t, "", withoutDefaultPort("a.test"))
}

func TestWordPacking(t *testing.T) {
	w := packWord(StateHalfOpen, maxCount, 1<<32-1)
	assert.Equal(t, StateHalfOpen, w.state())
	assert.Equal(t, maxCount, w.failures())
	assert.Equal(t, uint32(1<<32-1), w.gen())
	w = w.withFailures(7)
	assert.Equal(t, 7, w.failures())
	assert.Equal(t, StateHalfOpen, w.state())
	assert.Equal(t, uint32(1<<32-1), w.gen())
	next := packWord(StateOpen, 0, w.gen()+1)
	assert.Equal(t, uint32(0), next.gen(), "the generation wraps")
	assert.Equal(t, StateOpen, next.state())
}
