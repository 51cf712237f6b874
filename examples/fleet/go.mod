module github.com/httpbreaker/httpbreaker/examples/fleet

go 1.26.0

replace (
	github.com/httpbreaker/httpbreaker => ../..
	github.com/httpbreaker/httpbreaker/redisstore => ../../redisstore
)

require (
	github.com/httpbreaker/httpbreaker v0.2.0
	github.com/httpbreaker/httpbreaker/redisstore v0.2.0
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
