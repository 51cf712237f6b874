package statuspage_test

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/statuspage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// anyone authorizes every request: for tests of what the page does once
// authorized.
func anyone(*http.Request) bool { return true }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// fixture is a Transport with a closed, an open and an isolated host (whose
// name tries to inject markup).
func fixture(t *testing.T) (*httpbreaker.Transport, *clock) {
	clk := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		code := 200
		if req.URL.Host == "down.test" {
			code = 503
		}
		return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithClock(clk.Now),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1, ResetTimeout: 90 * time.Second}))
	require.NoError(t, err)
	for _, u := range []string{"http://up.test/", "http://down.test/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	rt.Isolate(`evil"><img src=x onerror=alert(1)>.test`)
	clk.mu.Lock()
	clk.now = clk.now.Add(25 * time.Second)
	clk.mu.Unlock()
	return rt, clk
}

func get(t *testing.T, h http.Handler, accept string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/breakers", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHTMLPage(t *testing.T) {
	rt, clk := fixture(t)
	rec := get(t, mustNew(t, rt, statuspage.WithClock(clk.Now)), "text/html")
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Contains(t, body, `<meta http-equiv="refresh" content="5">`)
	assert.Contains(t, body, `<span class="state closed">closed</span>`)
	assert.Contains(t, body, `<span class="state open">open</span>`)
	assert.Contains(t, body, `<td class="num retry">1m05s</td>`, "90s open, 25s gone")
	assert.Contains(t, body, `<td class="host">evil&#34;&gt;&lt;img src=x onerror=alert(1)&gt;.test</td>`, "hosts are escaped")
	assert.NotContains(t, body, "<img")
	assert.NotContains(t, body, "<form", "no controls unless enabled")
	assert.NotContains(t, body, "http://", "no external assets")
}

func TestJSON(t *testing.T) {
	rt, clk := fixture(t)
	rec := get(t, mustNew(t, rt, statuspage.WithClock(clk.Now)), "application/json")
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var got struct {
		Hosts []struct {
			Host           string   `json:"host"`
			State          string   `json:"state"`
			Isolated       bool     `json:"isolated"`
			RetryInSeconds *float64 `json:"retry_in_seconds"`
			Total          struct {
				Requests uint64 `json:"requests"`
				Failures uint64 `json:"failures"`
				Rejected uint64 `json:"rejected"`
			} `json:"total"`
		} `json:"hosts"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Len(t, got.Hosts, 3)
	down, evil, up := got.Hosts[0], got.Hosts[1], got.Hosts[2]
	assert.Equal(t, "down.test", down.Host)
	assert.Equal(t, "open", down.State)
	require.NotNil(t, down.RetryInSeconds)
	assert.Equal(t, 65.0, *down.RetryInSeconds)
	assert.Equal(t, uint64(1), down.Total.Failures)
	assert.True(t, evil.Isolated)
	assert.Nil(t, evil.RetryInSeconds)
	assert.Equal(t, "closed", up.State)
}

func post(h http.Handler, form url.Values, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://status.test/breakers", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestControls(t *testing.T) {
	rt, _ := fixture(t)
	isolate := url.Values{"host": {"up.test"}, "action": {"isolate"}}

	off := mustNew(t, rt)
	assert.Equal(t, http.StatusMethodNotAllowed, post(off, isolate).Code, "controls are off by default")
	assert.True(t, rt.IsClosed("up.test"))

	on := mustNew(t, rt, statuspage.WithControls(anyone))
	assert.Contains(t, get(t, on, "").Body.String(), `<button class="isolate"`)

	_, err := statuspage.New(rt, statuspage.WithControls(nil))
	assert.ErrorContains(t, err, "WithControls(nil)", "controls need an explicit decision")
	for _, cross := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://attacker.example"},
		{"Origin", "null"},
	} {
		assert.Equal(t, http.StatusForbidden, post(on, isolate, cross...).Code, "%v", cross)
	}
	assert.True(t, rt.IsClosed("up.test"), "no cross-site request got through")

	rec := post(on, isolate, "Origin", "http://status.test", "Sec-Fetch-Site", "same-origin")
	assert.Equal(t, http.StatusSeeOther, rec.Code)
	assert.Equal(t, "/breakers", rec.Header().Get("Location"))
	assert.True(t, rt.Status("up.test").Isolated)

	rec = post(on, url.Values{"host": {"up.test"}, "action": {"clear"}}) // curl: no browser headers
	assert.Equal(t, http.StatusSeeOther, rec.Code)
	assert.True(t, rt.IsClosed("up.test"))

	assert.Equal(t, http.StatusBadRequest, post(on, url.Values{"host": {"up.test"}, "action": {"explode"}}).Code)
	assert.Equal(t, http.StatusBadRequest, post(on, url.Values{"action": {"clear"}}).Code)
	for i := range 100 { // isolations of hosts the Transport never saw
		untracked := url.Values{"host": {fmt.Sprintf("flood-%d.test", i)}, "action": {"isolate"}}
		require.Equal(t, http.StatusNotFound, post(on, untracked).Code)
	}
	assert.False(t, rt.Tracked("flood-0.test"), "a form cannot fill the Transport with isolations")

	req := httptest.NewRequest(http.MethodDelete, "/breakers", nil)
	rec = httptest.NewRecorder()
	on.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

// The controls act only for requests authorize approves: a POST with no
// browser headers (curl, a script on the network) is no exception, and a
// page view it does not approve shows no buttons.
func TestControlsNeedAuthorization(t *testing.T) {
	rt, _ := fixture(t)
	isolate := url.Values{"host": {"up.test"}, "action": {"isolate"}}
	admin := func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer ops" }
	page := mustNew(t, rt, statuspage.WithControls(admin))

	assert.Equal(t, http.StatusForbidden, post(page, isolate).Code, "curl without credentials")
	assert.Equal(t, http.StatusForbidden, post(page, isolate, "Sec-Fetch-Site", "same-origin").Code,
		"a same-origin browser without credentials")
	assert.False(t, rt.Status("up.test").Isolated)
	assert.NotContains(t, get(t, page, "text/html").Body.String(), `<button`, "no buttons for a viewer it refuses")

	assert.Equal(t, http.StatusForbidden, post(page, isolate, "Authorization", "Bearer ops", "Origin", "https://attacker.example").Code,
		"credentials do not make a cross-site request acceptable")
	assert.Equal(t, http.StatusSeeOther, post(page, isolate, "Authorization", "Bearer ops").Code)
	assert.True(t, rt.Status("up.test").Isolated)
	req := httptest.NewRequest(http.MethodGet, "http://status.test/breakers", nil)
	req.Header.Set("Authorization", "Bearer ops")
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, req)
	assert.Contains(t, rec.Body.String(), `<button class="clear"`)
}

// Every row the page shows can be controlled, whatever its key looks like:
// keys set by httpbreaker.WithKey may hold / ? # @ and :.
func TestControlsWorkOnKeyedRows(t *testing.T) {
	rt, _ := fixture(t)
	for _, key := range []string{"billing/v2", "search?q=1", "ops@eu:2"} {
		req, _ := http.NewRequest(http.MethodGet, "http://up.test/", nil)
		resp, err := rt.RoundTrip(req.WithContext(httpbreaker.WithKey(req.Context(), key)))
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	page := mustNew(t, rt, statuspage.WithControls(anyone))
	body := get(t, page, "text/html").Body.String()
	for _, key := range []string{"billing/v2", "search?q=1", "ops@eu:2"} {
		require.Contains(t, body, `<td class="host">`+template.HTMLEscapeString(key)+`</td>`)
		rec := post(page, url.Values{"host": {key}, "action": {"isolate"}})
		require.Equal(t, http.StatusSeeOther, rec.Code, "%s: %s", key, rec.Body.String())
		assert.True(t, rt.Status(key).Isolated, key)
		require.Equal(t, http.StatusSeeOther, post(page, url.Values{"host": {key}, "action": {"clear"}}).Code)
		assert.True(t, rt.IsClosed(key), key)
	}
	assert.False(t, rt.Tracked("billing"), "no circuit made for the key's first segment")
	assert.False(t, rt.Status("up.test").Isolated)
}

// mustNew makes a page or fails the test.
func mustNew(t *testing.T, rt *httpbreaker.Transport, opts ...statuspage.Option) http.Handler {
	t.Helper()
	h, err := statuspage.New(rt, opts...)
	require.NoError(t, err)
	return h
}

func TestNewRejectsBadOptions(t *testing.T) {
	rt, _ := fixture(t)
	for name, opt := range map[string]statuspage.Option{
		"nil": nil, "refresh below a second": statuspage.WithRefresh(500 * time.Millisecond),
		"negative refresh": statuspage.WithRefresh(-time.Second), "nil clock": statuspage.WithClock(nil),
	} {
		_, err := statuspage.New(rt, opt)
		assert.Error(t, err, name)
	}
	_, err := statuspage.New(rt, statuspage.WithRefresh(0))
	assert.NoError(t, err, "0: never")
}

// Mounted under a prefix, the controls bring the browser back to the page.
func TestControlsUnderStripPrefix(t *testing.T) {
	rt, _ := fixture(t)
	mux := http.NewServeMux()
	mux.Handle("/debug/breakers/", http.StripPrefix("/debug/breakers", mustNew(t, rt, statuspage.WithControls(anyone))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(srv.URL+"/debug/breakers/", url.Values{"host": {"up.test"}, "action": {"isolate"}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/debug/breakers/", resp.Header.Get("Location"))
	assert.True(t, rt.Status("up.test").Isolated)
}

// An open host shows no run of failures (its count restarts at closing), and
// an isolated one offers Clear but not Isolate.
func TestRowsSayWhatTheyCan(t *testing.T) {
	rt, _ := fixture(t)
	rt.Isolate("up.test")
	rec := get(t, mustNew(t, rt, statuspage.WithControls(anyone)), "text/html")
	body := rec.Body.String()
	row := body[strings.Index(body, `<td class="host">up.test</td>`):]
	row = row[:strings.Index(row, "</tr>")]
	assert.Contains(t, row, "&mdash;")
	assert.NotContains(t, row, `value="isolate"`)
	assert.Contains(t, row, `value="clear"`)
}

// A host that is closed but shedding must not look healthy: its badge says
// so, and the page and the JSON show the refusals and the load.
func TestSheddingHostDoesNotLookHealthy(t *testing.T) {
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{MaxConcurrent: 1}))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://busy.test/", nil)
	held, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer held.Body.Close()
	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, httpbreaker.ErrOverloaded)

	page := mustNew(t, rt)
	body := get(t, page, "text/html").Body.String()
	assert.Contains(t, body, `<span class="state shedding">closed, shedding load</span>`)
	assert.Contains(t, body, `<td class="num load">1 in flight, limit 1</td>`)
	var got struct {
		Hosts []struct {
			State    string `json:"state"`
			Shedding bool   `json:"shedding"`
			InFlight int    `json:"in_flight"`
			Limit    int    `json:"limit"`
			Total    struct {
				Rejected uint64 `json:"rejected"`
				Shed     uint64 `json:"shed"`
			} `json:"total"`
		} `json:"hosts"`
	}
	require.NoError(t, json.Unmarshal(get(t, page, "application/json").Body.Bytes(), &got))
	require.Len(t, got.Hosts, 1)
	h := got.Hosts[0]
	assert.Equal(t, "closed", h.State)
	assert.True(t, h.Shedding)
	assert.Equal(t, 1, h.InFlight)
	assert.Equal(t, 1, h.Limit)
	assert.Equal(t, uint64(1), h.Total.Shed)
	assert.Equal(t, uint64(1), h.Total.Rejected)
}

// The retry budget's answers show per host: allowed, and denied in
// parentheses; the JSON has both in total.
func TestRetriesShowPerHost(t *testing.T) {
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 503, Body: io.NopCloser(strings.NewReader("busy")), Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, RetryBudget: 0.1, MinRetries: 1, FailureThreshold: 100, FailureRatio: 1,
	}))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, "http://api.test/", nil)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.True(t, rt.AllowRetry(req))
	require.False(t, rt.AllowRetry(req))

	page := mustNew(t, rt)
	assert.Contains(t, get(t, page, "text/html").Body.String(), `<td class="num retries">1 (1)</td>`)
	var got struct {
		Hosts []struct {
			Total httpbreaker.Counts `json:"total"`
		} `json:"hosts"`
	}
	require.NoError(t, json.Unmarshal(get(t, page, "application/json").Body.Bytes(), &got))
	require.Len(t, got.Hosts, 1)
	assert.Equal(t, uint64(1), got.Hosts[0].Total.Retries)
	assert.Equal(t, uint64(1), got.Hosts[0].Total.RetriesDenied)
}

// An operator opening the page in an incident sees what is in trouble
// first: a line of counts above the table, and the open circuit before the
// isolated host and the healthy one. The JSON keeps its order, by host.
func TestPagePutsTroubleFirst(t *testing.T) {
	rt, clk := fixture(t) // up.test closed, down.test open, evil… isolated
	page := mustNew(t, rt, statuspage.WithClock(clk.Now))
	body := get(t, page, "text/html").Body.String()
	assert.Contains(t, body, `<p class="summary"><b>3</b> hosts tracked · <b>1</b> open · <b>0</b> half-open · <b>0</b> shedding · <b>1</b> isolated</p>`)
	down := strings.Index(body, `<td class="host">down.test</td>`)
	evil := strings.Index(body, `<td class="host">evil`)
	up := strings.Index(body, `<td class="host">up.test</td>`)
	require.True(t, down > 0 && evil > 0 && up > 0)
	assert.Less(t, down, evil, "the open circuit first")
	assert.Less(t, evil, up, "the isolated host before the healthy one")

	var doc struct{ Hosts []struct{ Host string } }
	require.NoError(t, json.Unmarshal(get(t, page, "application/json").Body.Bytes(), &doc))
	var order []string
	for _, h := range doc.Hosts {
		order = append(order, h.Host)
	}
	assert.True(t, slices.IsSorted(order), "the JSON by host, as before: %v", order)
}
