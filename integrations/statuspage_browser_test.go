package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/statuspage"
)

// browser starts headless Chromium, or skips: set HTTPBREAKER_REQUIRE_BROWSER=1
// to fail instead (CI does, after installing Debian's chromium).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("HTTPBREAKER_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium not found and HTTPBREAKER_REQUIRE_BROWSER=1: apt-get install chromium")
		}
		t.Skip("chromium not found: apt-get install chromium to run the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1100, 420),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

func TestStatusPageInABrowser(t *testing.T) {
	ctx := browser(t)
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		code := http.StatusOK
		if req.URL.Host == "payments.example" {
			code = http.StatusServiceUnavailable
		}
		return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 3, ResetTimeout: 2 * time.Minute}))
	require.NoError(t, err)
	for i, u := range []string{"https://menu.example/", "https://payments.example/", "https://maps.example/"} {
		for range 4 + i {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if resp, err := rt.RoundTrip(req); err == nil {
				_ = resp.Body.Close()
			}
		}
	}
	page, err := statuspage.New(rt, statuspage.WithControls(func(*http.Request) bool { return true }), statuspage.WithRefresh(0))
	require.NoError(t, err)
	srv := httptest.NewServer(page)
	defer srv.Close()

	state := func(host string) string {
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-host="`+host+`"] .state`)))
		require.NoError(t, err)
		return text
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL)))
	assert.Equal(t, "closed", state("menu.example"))
	assert.Equal(t, "open", state("payments.example"))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-host="menu.example"] button.isolate`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-host="menu.example"] .state.open`)),
	))
	assert.Equal(t, "open (isolated)", state("menu.example"), "the click isolated the host")
	assert.True(t, rt.Status("menu.example").Isolated)

	if path := os.Getenv("HTTPBREAKER_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}
}

// The page as people see it: on a laptop (1280×900) and a phone held
// upright (390×844), with the short 127.0.0.1:port hosts a test or a
// sidecar has and a long one, nothing scrolls sideways and every control
// and "Retry in" lies inside the viewport (at 1280 px they sat behind a
// horizontal scrollbar). With HTTPBREAKER_SCREENSHOT_DIR set it writes a
// screenshot at each width (make statuspage-shots; docs/statuspage.png is
// the laptop's).
func TestStatusPageFitsALaptopAndAPhone(t *testing.T) {
	ctx := browser(t)
	failing := map[string]bool{"127.0.0.1:40123": true, "payments.internal.example.com:8443": true}
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		code := http.StatusOK
		if failing[req.URL.Host] {
			code = http.StatusServiceUnavailable
		}
		return &http.Response{StatusCode: code, Body: http.NoBody, Request: req}, nil
	})
	rt, err := httpbreaker.New(base, httpbreaker.WithPolicy(httpbreaker.Policy{
		FailureThreshold: 3, ResetTimeout: 2 * time.Minute, MaxConcurrent: 64, Window: time.Minute, RetryBudget: 0.2,
	}))
	require.NoError(t, err)
	defer rt.Close()
	for _, u := range []string{"http://127.0.0.1:40121/", "http://127.0.0.1:40122/", "http://127.0.0.1:40123/",
		"https://payments.internal.example.com:8443/"} {
		for range 5 {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if resp, err := rt.RoundTrip(req); err == nil {
				_ = resp.Body.Close()
			}
		}
	}
	rt.Isolate("127.0.0.1:40122")
	page, err := statuspage.New(rt, statuspage.WithControls(func(*http.Request) bool { return true }), statuspage.WithRefresh(0))
	require.NoError(t, err)
	srv := httptest.NewServer(page)
	defer srv.Close()

	type layout struct {
		Width, Scroll, Buttons int
		Outside                []string
	}
	const measure = `(() => {
		const w = document.documentElement.clientWidth, out = [];
		for (const el of document.querySelectorAll('button, td.retry')) {
			const r = el.getBoundingClientRect();
			if (r.width > 0 && (r.left < 0 || r.right > w)) out.push(el.closest('tr').dataset.host + ' ' + el.className);
		}
		return {Width: w, Scroll: document.documentElement.scrollWidth, Buttons: document.querySelectorAll('button').length, Outside: out};
	})()`
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"laptop", 1280, 900, false}, {"phone", 390, 844, true}} {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.EmulateViewport(size.width, size.height, chromedp.EmulateScale(1), func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
				p.Mobile = size.mobile
			}),
			chromedp.Navigate(srv.URL),
			chromedp.WaitVisible(chromedp.CSS(`p.summary`)),
		), size.name)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[layout](measure))
		require.NoError(t, err, size.name)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err, size.name)
		assert.Equal(t, int(size.width), got.Width, size.name)
		assert.LessOrEqual(t, got.Scroll, got.Width, "%s: nothing scrolls sideways", size.name)
		assert.Equal(t, 7, got.Buttons, "%s: four hosts, an Isolate for each but the isolated one, and a Clear each", size.name)
		assert.Empty(t, got.Outside, "%s: controls and Retry in inside the viewport", size.name)
		if dir := os.Getenv("HTTPBREAKER_SCREENSHOT_DIR"); dir != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "statuspage-"+size.name+".png"), png, 0o644))
		}
	}
}
