package httpbreaker

import (
	"net/url"
	"strings"
)

// A host's key: what a request's URL, or an operator's argument, names.

// requestKey is the default breaker key of a request URL: its host,
// lower-cased, with the port kept only when it is explicit and not the
// scheme's default. It allocates only when the host has upper-case letters.
func requestKey(u *url.URL) string {
	host := u.Host
	if i := portColon(host); i >= 0 {
		if port := host[i+1:]; port == "" || port == defaultPort(u.Scheme) {
			host = host[:i]
		}
	} else if host != "" && host[0] != '[' && strings.Count(host, ":") > 1 {
		host = "[" + host + "]" // a bare IPv6 address, as a URL should not have it
	}
	return strings.ToLower(host)
}

// maybeKey reports whether a request URL's host, as it stands, can be its
// own breaker key: whether, if a breaker is known under exactly that string,
// requestKey would give that string too. Keys are lower-case and keep only
// ports that are no scheme's default, so a host that matches one needs no
// normalising — unless it ends in a port requestKey might strip. This lets
// the request path skip requestKey for hosts already tracked.
func maybeKey(host string) bool {
	n := len(host)
	if n == 0 {
		return false
	}
	switch host[n-1] { // most hosts end in a letter: one comparison
	case ':':
		return false
	case '0':
		return !strings.HasSuffix(host, ":80")
	case '3':
		return !strings.HasSuffix(host, ":443")
	}
	return true
}

// portColon returns the index of the colon before host's port, or -1: in
// "[v6]:port" the colon right after the bracket; otherwise the only colon
// (several colons without brackets are a bare IPv6 address, no port).
func portColon(host string) int {
	if strings.HasPrefix(host, "[") {
		end := strings.LastIndexByte(host, ']')
		if end < 0 || end+1 >= len(host) || host[end+1] != ':' {
			return -1
		}
		return end + 1
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[:i], ':') >= 0 {
		return -1
	}
	return i
}

func defaultPort(scheme string) string {
	switch {
	case strings.EqualFold(scheme, "http"):
		return "80"
	case strings.EqualFold(scheme, "https"):
		return "443"
	}
	return ""
}

// normalizeHost turns what a caller passes to State, ClearState and the
// like — a host, a host:port or an absolute URL — into a breaker key: an
// absolute URL gets exactly the key of a request to it; a bare host is
// lower-cased, loses any userinfo, path or empty port, and a bare IPv6
// address gains its brackets. Every key is its own normal form:
// normalizeHost(normalizeHost(s)) == normalizeHost(s).
func normalizeHost(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return requestKey(u)
		}
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if s[0] != '[' && strings.Count(s, ":") > 1 {
		s = "[" + s + "]"
	}
	if i := portColon(s); i >= 0 && i == len(s)-1 {
		s = strings.TrimSpace(s[:i])
	}
	return strings.ToLower(s)
}

// withoutDefaultPort returns key without its port when the port is 80 or 443,
// and "" otherwise: a bare "example.com:443" most likely means the breaker of
// https://example.com, whose key is "example.com".
func withoutDefaultPort(key string) string {
	if i := portColon(key); i >= 0 {
		if port := key[i+1:]; port == "80" || port == "443" {
			return key[:i]
		}
	}
	return ""
}
