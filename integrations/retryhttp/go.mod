module github.com/httpbreaker/httpbreaker/integrations/retryhttp

go 1.24

// For work inside this repository; a consumer gets the root at the version required below.
replace github.com/httpbreaker/httpbreaker => ../..

require (
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/httpbreaker/httpbreaker v0.0.0-20261207165546-b2a42087669a
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
