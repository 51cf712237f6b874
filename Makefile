# The README's two commands for a fresh machine: `make demo` and `make test`.
GO ?= go

.PHONY: demo test bench fmt

demo: ## the seed's restaurant menu, through httpbreaker
	$(GO) run ./examples/menu

test: ## gofmt, vet and every test under the race detector
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench: ## the hot-path benchmarks: bare, floor and httpbreaker side by side
	$(GO) test -run '^$$' -bench 'RoundTrip' -benchmem -count 6 .

fmt:
	gofmt -w .
