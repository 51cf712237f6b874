module github.com/httpbreaker/httpbreaker/redisstore

go 1.24

// For work inside this repository; a consumer gets the root at the version required below.
replace github.com/httpbreaker/httpbreaker => ../

require (
	github.com/httpbreaker/httpbreaker v0.0.0-20261207164508-f926c06e8788
	github.com/redis/go-redis/v9 v9.0.5
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.2.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
