package redisstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A host's keys, under the prefix, with the host escaped and braced:
//
//	prefix:{host}:failures  the fleet's run of consecutive failures
//	prefix:{host}:votes     the members voting that host fails: a hash of
//	                        member to when the vote was cast (Redis's clock, ms)
//	prefix:{host}:open      the fleet's opening or isolation (see openValue)
//	prefix:{host}:cleared   left by Reset: the host was cleared, not lost
//	prefix:{host}:probe:N   probe lease N
//
// The channel is prefix:events.

// key names one of host's keys. The host is escaped, so it cannot hold a
// brace or a colon, and braced, so all its keys share a hash slot.
func (s *Store) key(host, kind string) string {
	return s.prefix + ":{" + escape(host) + "}:" + kind
}

func (s *Store) channel() string { return s.prefix + ":events" }

// hostOf returns the host of a key made by key, and whether it is one.
func (s *Store) hostOf(key, kind string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+":{")
	if !ok {
		return "", false
	}
	escaped, ok := strings.CutSuffix(rest, "}:"+kind)
	if !ok {
		return "", false
	}
	return unescape(escaped)
}

// escape keeps letters, digits, '.', '-' and '_' and writes every other
// byte as %XX: an injective mapping of bytes (valid UTF-8 or not) onto a
// safe alphabet, used in keys and in messages alike.
func escape(host string) string {
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// unescape reverses escape; ok is false for a string escape never makes.
func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// globEscape escapes the characters SCAN's MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// An open key's value says what it holds, in durations, never in
// instants, so that members' clocks need not agree:
//
//	"i"       an isolation, until Reset;
//	"o<ms>"   an opening; the key outlives it by ms milliseconds (the
//	          probes' lease), so it ends at the key's PTTL minus ms, by
//	          Redis's own clock.
//
// A bare number is what v0.1 members wrote: the end of the opening in Unix
// milliseconds, 0 for an isolation.
const isolatedValue = "i"

// openValue is the value of an opening whose key outlives it by margin.
func openValue(margin time.Duration) string {
	return "o" + strconv.FormatInt(margin.Milliseconds(), 10)
}

// opening is what an open key says: an isolation, or an opening with the
// time it has left.
type opening struct {
	isolated bool
	left     time.Duration
}

// parseOpening reads an open key's value and PTTL; ok is false for a value
// no member writes, or an opening already over.
func parseOpening(value string, pttl time.Duration, now func() time.Time) (o opening, ok bool) {
	switch {
	case value == isolatedValue:
		return opening{isolated: true}, true
	case strings.HasPrefix(value, "o"):
		margin, err := strconv.ParseInt(value[1:], 10, 64)
		if err != nil || pttl <= 0 {
			return opening{}, false
		}
		o.left = pttl - time.Duration(margin)*time.Millisecond
	default: // v0.1
		ms, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return opening{}, false
		}
		if ms == 0 {
			return opening{isolated: true}, true
		}
		o.left = time.UnixMilli(ms).Sub(now())
	}
	return o, o.left > 0
}

// until is the instant an opening ends by the member's clock; zero for an
// isolation.
func (o opening) until(now func() time.Time) time.Time {
	if o.isolated {
		return time.Time{}
	}
	return now().Add(o.left)
}
