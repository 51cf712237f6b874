package redisstore_test

import (
	"log"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/redisstore"
)

// One breaker per host for every process of a fleet. (It needs a Redis, so
// it is compiled but not run here; the package's tests start their own.)
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close() // last: the Store and the Transports use it

	store, err := redisstore.New(rdb,
		redisstore.WithPrefix("checkout"), // the keys and channel of this fleet
		redisstore.WithOnTrouble(func(err error) { log.Printf("breaker store: %v", err) }))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	rt, err := httpbreaker.New(nil, httpbreaker.WithStore(store),
		httpbreaker.WithPolicy(httpbreaker.Policy{FailureThreshold: 5, ResetTimeout: 30 * time.Second}))
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close() // unsubscribes from the Store
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	resp, err := client.Get("https://payments.example/health")
	if err != nil {
		log.Print(err) // errors.Is(err, httpbreaker.ErrCircuitOpen) when the fleet's circuit is open
		return
	}
	resp.Body.Close()
}
