module github.com/httpbreaker/httpbreaker/integrations/breakergrpc

go 1.24.0

// For work inside this repository; a consumer gets the root at the version required below.
replace github.com/httpbreaker/httpbreaker => ../..

require (
	github.com/httpbreaker/httpbreaker v0.0.0-20261207234011-01a3e2eadd99
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260120221211-b8f7ae30c516
	google.golang.org/grpc v1.80.0
	google.golang.org/protobuf v1.36.11
)

require (
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.49.0 // indirect
	golang.org/x/sys v0.40.0 // indirect
	golang.org/x/text v0.33.0 // indirect
)
