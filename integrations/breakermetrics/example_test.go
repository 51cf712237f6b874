package breakermetrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakermetrics"
)

// Register a Transport's collector; every scrape reads the hosts' states
// and counts at that moment.
func ExampleNew() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer upstream.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}
	if resp, err := client.Get(upstream.URL); err == nil {
		resp.Body.Close()
	}

	collector, err := breakermetrics.New(rt)
	if err != nil {
		panic(err)
	}
	registry := prometheus.NewRegistry() // prometheus.DefaultRegisterer in most programs
	registry.MustRegister(collector)

	families, err := registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, family := range families {
		switch family.GetName() {
		case "httpbreaker_state", "httpbreaker_failures_total":
			fmt.Println(family.GetName(), family.GetMetric()[0].GetGauge().GetValue()+family.GetMetric()[0].GetCounter().GetValue())
		}
	}
	// Output:
	// httpbreaker_failures_total 1
	// httpbreaker_state 1
}
