# The README's two commands for a fresh machine: `make demo` and `make test`.
GO ?= go

.PHONY: help demo fleet-demo test test-cluster consumer-check bench bench-core simulate statuspage-shots fuzz fmt lint vuln

MODULES = . bench integrations integrations/retryhttp integrations/breakermetrics integrations/breakerotel integrations/breakergrpc redisstore examples/fleet
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK = golang.org/x/vuln/cmd/govulncheck@v1.9.0

help: ## this list: each target and what it does
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | expand -t 16

FUZZ_TARGETS = FuzzNormalizeHost FuzzKeysAgree FuzzRetryAfter FuzzMethods FuzzRoundTrip
FUZZTIME ?= 60s

demo: ## a restaurant's menu through httpbreaker: the last good menu while the kitchen fails
	$(GO) run ./examples/menu

fleet-demo: ## 4 members, local breakers vs shared through Redis (quorum 2 and 1): a failing upstream, then one sick member
	cd examples/fleet && $(GO) run .

test: ## gofmt, vet (every module) and every test under the race detector
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd integrations && $(GO) vet ./...
	cd integrations/retryhttp && $(GO) vet ./...
	cd integrations/breakermetrics && $(GO) vet ./...
	cd integrations/breakerotel && $(GO) vet ./...
	cd integrations/breakergrpc && $(GO) vet ./...
	cd redisstore && $(GO) vet ./...
	cd examples/fleet && $(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd integrations && $(GO) test -race -count=1 ./...
	cd integrations/retryhttp && $(GO) test -race -count=1 ./...
	cd integrations/breakermetrics && $(GO) test -race -count=1 ./...
	cd integrations/breakerotel && $(GO) test -race -count=1 ./...
	cd integrations/breakergrpc && $(GO) test -race -count=1 ./...
	cd redisstore && $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory test-cluster
	@skipped=""; \
	command -v redis-server >/dev/null || skipped="$$skipped Redis (no redis-server);"; \
	command -v redis-cli >/dev/null || skipped="$$skipped Redis Cluster (no redis-cli);"; \
	command -v chromium >/dev/null || skipped="$$skipped status page in a browser (no chromium);"; \
	if [ -n "$$skipped" ]; then echo "make test: passed; skipped:$$skipped .ci/run installs them"; \
	else echo "make test: passed, every optional suite included (Redis, Redis Cluster, browser)"; fi

consumer-check: ## every library module built and vetted from outside the repository, with Go 1.24
	.ci/consumer-check

test-cluster: ## redisstore on a real 3-master Redis Cluster: kill, freeze, fail over (no -race: it measures time)
	cd redisstore && $(GO) test -count=1 -run 'Cluster' ./...

bench: ## httpbreaker against its peers, side by side; writes bench/RESULTS.md
	# Six rounds of every benchmark, not six counts of each in a row: drift on a shared machine
	# then lands on every contender alike instead of on whole rows.
	cd bench && $(GO) test -c -o bench.test . && rm -f results.txt && \
		for round in 1 2 3 4 5 6; do ./bench.test -test.run '^$$' -test.bench . -test.benchmem -test.benchtime 500ms -test.timeout 30m | tee -a results.txt || exit 1; done; \
		rm -f bench.test
	cd bench && $(GO) tool benchstat results.txt | tee benchstat.txt
	cd bench && $(GO) run ./report results.txt benchstat.txt > RESULTS.md

bench-core: ## the root package's hot-path benchmarks: bare, floor and httpbreaker, then benchstat
	$(GO) test -run '^$$' -bench 'RoundTrip' -benchmem -count 6 . > bench-core.txt
	cd bench && $(GO) tool benchstat ../bench-core.txt

simulate: ## the overload, retry and hedging simulations (deterministic, drawing docs/img/hedging-cdf-*.svg), then adaptive limiters against failsafe-go's in real time, open loop and worker pools, drawing docs/img/limiters-*.svg (about four minutes)
	$(GO) test -count 1 -run 'TestOverloadSimulation|TestCriticalitySimulation|TestConcurrencySimulation|TestConcurrencySimulationClosedLoop|TestRetrySimulation|TestHedgingSimulation' -v . -args -sim.minutes 10 -sim.plots docs/img | grep -v '^=== RUN'
	cd bench && $(GO) test -count 1 -timeout 30m -run 'TestLimitersRealTime' -v . -args -limiters -limiters.plots ../docs/img | grep -v '^=== RUN'

statuspage-shots: ## the status page in headless Chromium at 1280 and 390 px: docs/statuspage.png and docs/img/statuspage-phone.png
	@dir=$$(mktemp -d); \
	cd integrations && HTTPBREAKER_REQUIRE_BROWSER=1 HTTPBREAKER_SCREENSHOT_DIR=$$dir $(GO) test -count 1 -run 'TestStatusPageFitsALaptopAndAPhone' . && \
	cp $$dir/statuspage-laptop.png ../docs/statuspage.png && cp $$dir/statuspage-phone.png ../docs/img/statuspage-phone.png; \
	status=$$?; rm -rf $$dir; exit $$status

fuzz: ## each fuzz target for $(FUZZTIME); make test runs their seed corpora
	@for target in $(FUZZ_TARGETS); do \
		echo "== $$target"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) . || exit 1; \
	done

fmt: ## gofmt -w the tree
	gofmt -w .

lint: ## gofmt, go vet and staticcheck on every module
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	@for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...) || exit 1; done

vuln: ## govulncheck on every library module (needs vuln.go.dev; says so and skips when offline)
	@if ! $(GO) run $(GOVULNCHECK) -version >/dev/null 2>&1 || ! curl -sf --max-time 5 -o /dev/null https://vuln.go.dev/index/modules.json.gz; then \
		echo "make vuln: skipped: vuln.go.dev (or the module proxy) is not reachable from here"; exit 0; fi; \
	for m in . redisstore integrations/retryhttp integrations/breakermetrics integrations/breakerotel integrations/breakergrpc; do \
		echo "== $$m"; (cd $$m && $(GO) run $(GOVULNCHECK) ./...) || exit 1; done
