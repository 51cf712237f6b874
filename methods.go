package httpbreaker

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// DefaultMethods is the table of methods a [Transport] lets through unless
// [WithMethods] replaces it: the methods of RFC 9110 plus PATCH. It is copied
// by [New]; changing it later affects only transports made after.
var DefaultMethods = []string{
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
}

// methodTable is a small list of allowed methods. Methods are case-sensitive
// (RFC 9110 §9.1); an empty method means GET, as in net/http. Whether GET,
// most requests' method, is allowed is kept apart: answered without a
// loop or a string comparison call.
type methodTable struct {
	get  bool
	list []string
}

// newMethodTable checks each method is an RFC 9110 token and drops repeats.
func newMethodTable(methods []string) (methodTable, error) {
	if len(methods) == 0 {
		return methodTable{}, errors.New("httpbreaker: WithMethods needs at least one method")
	}
	table := methodTable{list: make([]string, 0, len(methods))}
	for _, m := range methods {
		if !isToken(m) {
			return methodTable{}, fmt.Errorf("httpbreaker: WithMethods: %q is not a valid method token", m)
		}
		if upper := strings.ToUpper(m); upper != m && slices.Contains(DefaultMethods, upper) {
			// methods are case-sensitive: "get" would refuse every GET
			return methodTable{}, fmt.Errorf("httpbreaker: WithMethods: %q is not %q: methods are case-sensitive (RFC 9110 §9.1)", m, upper)
		}
		if !slices.Contains(table.list, m) {
			table.list = append(table.list, m)
			table.get = table.get || m == http.MethodGet
		}
	}
	return table, nil
}

// allows reports whether method is in the table; "" means GET.
func (t methodTable) allows(method string) bool {
	if method == http.MethodGet || method == "" {
		return t.get
	}
	return slices.Contains(t.list, method)
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c <= ' ' || c == 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
