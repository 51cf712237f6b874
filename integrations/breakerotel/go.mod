module github.com/httpbreaker/httpbreaker/integrations/breakerotel

go 1.24

// For work inside this repository; a consumer gets the root at the version required below.
replace github.com/httpbreaker/httpbreaker => ../..

require (
	github.com/httpbreaker/httpbreaker v0.0.0-20261208003704-cfdbb4d55c92
	go.opentelemetry.io/otel v1.35.0
	go.opentelemetry.io/otel/metric v1.35.0
)

require github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
