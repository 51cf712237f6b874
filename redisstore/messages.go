package redisstore

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// A message on the channel is one line of text, the host escaped as in
// keys, so that its bytes travel exactly (JSON would turn invalid UTF-8
// into U+FFFD), and an opening's time as what is left of it, never an
// instant, so that members' clocks need not agree:
//
//	open <ms> <host>   an opening with ms milliseconds left
//	isolate <host>     an isolation, until cleared
//	close <host>       a closing
//
// A message that starts with '{' is v0.1's JSON, read for rolling upgrades.

// openMessage announces an opening of host with left to run, or an
// isolation when isolated.
func openMessage(host string, o opening) string {
	if o.isolated {
		return "isolate " + escape(host)
	}
	return "open " + strconv.FormatInt(max(o.left.Milliseconds(), 1), 10) + " " + escape(host)
}

// closeMessage announces a closing of host.
func closeMessage(host string) string { return "close " + escape(host) }

// parseMessage reads a message: the host, whether it opens, and the
// opening; ok is false for anything no member sends.
func parseMessage(payload string, now func() time.Time) (host string, open bool, o opening, ok bool) {
	if strings.HasPrefix(payload, "{") {
		return parseLegacyMessage(payload, now)
	}
	verb, rest, _ := strings.Cut(payload, " ")
	switch verb {
	case "close":
		host, ok = unescape(rest)
		return host, false, opening{}, ok && host != ""
	case "isolate":
		host, ok = unescape(rest)
		return host, true, opening{isolated: true}, ok && host != ""
	case "open":
		ms, escaped, _ := strings.Cut(rest, " ")
		n, err := strconv.ParseInt(ms, 10, 64)
		host, ok = unescape(escaped)
		return host, true, opening{left: time.Duration(n) * time.Millisecond}, ok && err == nil && n > 0 && host != ""
	}
	return "", false, opening{}, false
}

// parseLegacyMessage reads v0.1's JSON message, whose opening ends at an
// instant of the sender's clock.
func parseLegacyMessage(payload string, now func() time.Time) (host string, open bool, o opening, ok bool) {
	var m struct {
		Host    string `json:"host"`
		Open    bool   `json:"open"`
		UntilMS int64  `json:"until_ms"`
	}
	if json.Unmarshal([]byte(payload), &m) != nil || m.Host == "" {
		return "", false, opening{}, false
	}
	if !m.Open {
		return m.Host, false, opening{}, true
	}
	if m.UntilMS == 0 {
		return m.Host, true, opening{isolated: true}, true
	}
	o.left = time.UnixMilli(m.UntilMS).Sub(now())
	return m.Host, true, o, o.left > 0
}
