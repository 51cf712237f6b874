package statuspage_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/statuspage"
)

// Mount the page under a prefix, with controls for operators only, and
// read it as JSON.
func ExampleNew() {
	kitchen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "oven on fire", http.StatusBadGateway)
	}))
	defer kitchen.Close()
	rt, err := httpbreaker.New(nil, httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 1}))
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	client := &http.Client{Transport: rt}
	if resp, err := client.Get(kitchen.URL); err == nil { // a 502: the circuit opens
		resp.Body.Close()
	}

	// Who may isolate and clear hosts is the program's decision: here, a
	// bearer token its operators hold.
	isOperator := func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer ops-token" }
	page, err := statuspage.New(rt, statuspage.WithControls(isOperator))
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/breakers/", http.StripPrefix("/debug/breakers", page))
	admin := httptest.NewServer(mux)
	defer admin.Close()

	req, _ := http.NewRequest(http.MethodGet, admin.URL+"/debug/breakers/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	var status struct {
		Hosts []struct {
			State string             `json:"state"`
			Total httpbreaker.Counts `json:"total"`
		} `json:"hosts"`
	}
	json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	fmt.Println(len(status.Hosts), status.Hosts[0].State, status.Hosts[0].Total.Failures)

	clear := url.Values{"host": {kitchen.URL}, "action": {"clear"}}
	for _, token := range []string{"", "ops-token"} {
		req, _ := http.NewRequest(http.MethodPost, admin.URL+"/debug/breakers/", strings.NewReader(clear.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, rt.State(kitchen.URL))
	}
	// Output:
	// 1 open 1
	// 403 open
	// 303 closed
}
