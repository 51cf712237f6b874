package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

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
