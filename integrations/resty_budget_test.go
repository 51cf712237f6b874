package integrations_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"resty.dev/v3"

	"github.com/httpbreaker/httpbreaker"
)

// The budgeted resty client of docs/integrations.md against a host that
// always fails: the budget's one retry reaches it, not resty's three.
func TestRestyRetryConditionSpendsTheBudget(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{
		Window: time.Minute, RetryBudget: 0.1, MinRetries: 1, FailureThreshold: 100, FailureRatio: 1,
	}))
	require.NoError(t, err)
	defer rt.CloseIdleConnections()

	budgeted := readmeRestyBudget(rt).SetRetryWaitTime(time.Millisecond).SetRetryMaxWaitTime(time.Millisecond)
	defer budgeted.Close()
	resp, err := budgeted.R().Get(srv.URL)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode())
	assert.Equal(t, int64(2), calls.Load(), "one call earns ⌊1 + 0.1⌋ = 1 retry")
	total := rt.Snapshot()[0].Total
	assert.Equal(t, uint64(1), total.Retries)
	assert.Equal(t, uint64(1), total.RetriesDenied)

	plain := readmeResty(rt).SetRetryWaitTime(time.Millisecond).SetRetryMaxWaitTime(time.Millisecond).
		AddRetryConditions(func(res *resty.Response, err error) bool { return err != nil || res.StatusCode() >= 500 })
	defer plain.Close()
	spent, err := plain.R().Get(srv.URL)
	assert.Equal(t, int64(2+4), calls.Load(), "without the budget, resty's three retries reach the host")
	// A refusal by the budget ends as resty's own exhaustion does: the last
	// response and no error, for a status resty retried.
	require.NoError(t, err)
	assert.Equal(t, resp.StatusCode(), spent.StatusCode(), "the same ending")
}
