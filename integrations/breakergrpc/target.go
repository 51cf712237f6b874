package breakergrpc

import "strings"

// TargetKey is the circuit key the interceptors give a ClientConn's target
// by default: the host of its endpoint, normalised as httpbreaker keys an
// HTTP host — lower-cased, a bare IPv6 address in brackets, the port kept
// unless it is 443 or 80 (gRPC's default port, and HTTP's) — so a target
// and an HTTP host that name one upstream share one circuit:
// "dns:///Orders:443", "orders" and a request to https://orders all key
// "orders"; "dns://8.8.8.8/orders:50051" keys "orders:50051".
//
// The endpoint is what follows "scheme://authority/" (a target without a
// scheme is all endpoint, as grpc.NewClient reads it). Targets that name
// no host — unix sockets, or a scheme whose endpoint is a path — key as
// the whole target, lower-cased.
func TargetKey(target string) string {
	endpoint := strings.TrimSpace(target)
	if i := strings.Index(endpoint, "://"); i > 0 && isScheme(endpoint[:i]) {
		scheme, rest := endpoint[:i], endpoint[i+3:]
		if strings.HasPrefix(strings.ToLower(scheme), "unix") {
			return strings.ToLower(endpoint)
		}
		slash := strings.IndexByte(rest, '/')
		if slash < 0 {
			return strings.ToLower(endpoint)
		}
		endpoint = rest[slash+1:]
	} else if strings.HasPrefix(strings.ToLower(endpoint), "unix:") {
		return strings.ToLower(endpoint)
	}
	if i := strings.IndexAny(endpoint, "/?#"); i >= 0 {
		endpoint = endpoint[:i]
	}
	if endpoint == "" {
		return strings.ToLower(strings.TrimSpace(target))
	}
	host, port := endpoint, ""
	switch {
	case strings.HasPrefix(host, "["):
		if end := strings.IndexByte(host, ']'); end > 0 {
			host, port = host[:end+1], strings.TrimPrefix(host[end+1:], ":")
		}
	case strings.Count(host, ":") == 1:
		i := strings.IndexByte(host, ':')
		host, port = host[:i], host[i+1:]
	case strings.Count(host, ":") > 1: // a bare IPv6 address
		host = "[" + host + "]"
	}
	host = strings.ToLower(host)
	if port == "" || port == "443" || port == "80" {
		return host
	}
	return host + ":" + port
}

// isScheme reports whether s can be a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}
