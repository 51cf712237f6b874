module github.com/httpbreaker/httpbreaker/integrations/breakermetrics

go 1.24

// For work inside this repository; a consumer gets the root at the version required below.
replace github.com/httpbreaker/httpbreaker => ../..

require (
	github.com/httpbreaker/httpbreaker v0.0.0-20261208003704-cfdbb4d55c92
	github.com/prometheus/client_golang v1.19.1
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.2.0 // indirect
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/prometheus/client_model v0.5.0 // indirect
	github.com/prometheus/common v0.48.0 // indirect
	github.com/prometheus/procfs v0.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.17.0 // indirect
	google.golang.org/protobuf v1.33.0 // indirect
)
