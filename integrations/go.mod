module github.com/httpbreaker/httpbreaker/integrations

go 1.26.0

// A test-only module: the interop tests with resty, otelhttp and a real browser. No library
// requires it; the adapters are modules of their own.
replace (
	github.com/httpbreaker/httpbreaker => ../
	github.com/httpbreaker/httpbreaker/integrations/breakergrpc => ./breakergrpc
	github.com/httpbreaker/httpbreaker/integrations/breakermetrics => ./breakermetrics
	github.com/httpbreaker/httpbreaker/integrations/breakerotel => ./breakerotel
	github.com/httpbreaker/httpbreaker/integrations/retryhttp => ./retryhttp
	github.com/httpbreaker/httpbreaker/redisstore => ../redisstore
)

require (
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/httpbreaker/httpbreaker v0.2.0
	github.com/httpbreaker/httpbreaker/integrations/breakergrpc v0.2.0
	github.com/httpbreaker/httpbreaker/integrations/breakermetrics v0.2.0
	github.com/httpbreaker/httpbreaker/integrations/breakerotel v0.2.0
	github.com/httpbreaker/httpbreaker/integrations/retryhttp v0.2.0
	github.com/httpbreaker/httpbreaker/redisstore v0.2.0
	github.com/prometheus/client_golang v1.25.0
	github.com/redis/go-redis/v9 v9.0.5
	github.com/stretchr/testify v1.12.1
	go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp v0.72.0
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/sdk v1.47.0
	go.opentelemetry.io/otel/sdk/metric v1.47.0
	go.opentelemetry.io/otel/trace v1.47.0
	go.uber.org/goleak v1.3.0
	google.golang.org/grpc v1.80.0
	resty.dev/v3 v3.0.0-rc.4
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/felixge/httpsnoop v1.1.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel/log v1.47.0 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260120221211-b8f7ae30c516 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
