package integrations_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakermetrics"
	"github.com/httpbreaker/httpbreaker/statuspage"
)

// A hedged call shows on the status page and in both metrics companions:
// the first attempt hangs until it is canceled, the hedge answers.
func TestHedgesAreShownPerHost(t *testing.T) {
	var arrivals atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrivals.Add(1) == 1 {
			<-r.Context().Done() // the slow first attempt, canceled by the hedge's win
			return
		}
		_, _ = io.WriteString(w, "menu")
	}))
	defer upstream.Close()
	client, rt, err := httpbreaker.NewClient(nil, httpbreaker.WithPolicy(httpbreaker.Policy{HedgeAfter: time.Millisecond}))
	require.NoError(t, err)
	defer rt.Close()
	resp, err := client.Get(upstream.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "menu", string(body))
	key := rt.Snapshot()[0].Host
	require.Equal(t, httpbreaker.Counts{Requests: 1, Successes: 1, Hedges: 1, HedgeWins: 1}, rt.Status(key).Total)

	page, err := statuspage.New(rt)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Contains(t, rec.Body.String(), `<td class="num hedges">1 (1)</td>`)

	collector, err := breakermetrics.New(rt)
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(collector))
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP httpbreaker_hedge_wins_total Calls a hedged attempt answered rather than the first.
# TYPE httpbreaker_hedge_wins_total counter
httpbreaker_hedge_wins_total{host="`+key+`"} 1
# HELP httpbreaker_hedges_total Hedged attempts sent (Policy.HedgeAfter).
# TYPE httpbreaker_hedges_total counter
httpbreaker_hedges_total{host="`+key+`"} 1
`), "httpbreaker_hedges_total", "httpbreaker_hedge_wins_total"))

	collect := observed(t, rt)
	rm := collect()
	for _, name := range []string{"httpbreaker.hedges", "httpbreaker.hedge.wins"} {
		got, ok := point(t, rm, name, attribute.String("server.address", key))
		assert.True(t, ok, name)
		assert.Equal(t, int64(1), got, name)
	}
}
