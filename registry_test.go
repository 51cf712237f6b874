package httpbreaker

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegistryTracksEachKeyOnce(t *testing.T) {
	var r registry
	assert.Nil(t, r.lookup("a"), "looking does not track")
	a := r.obtain("a", &shared{})
	require.NotNil(t, a)
	assert.Same(t, a, r.obtain("a", &shared{}))
	assert.Same(t, a, r.lookup("a"))
	assert.Equal(t, "a", a.host)

	for i := range 100 { // enough misses to publish the dirty map, more than once
		r.obtain(fmt.Sprint(i), &shared{})
		assert.Same(t, a, r.lookup("a"))
	}
	for i := range 100 {
		assert.NotNil(t, r.lookup(fmt.Sprint(i)), i)
	}
	assert.Nil(t, r.lookup("never"))
}

func TestRegistryConcurrentObtainGivesOneBreakerPerKey(t *testing.T) {
	var r registry
	const goroutines, keys = 8, 200
	got := make([][]*breaker, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[g] = make([]*breaker, keys)
			for i := range keys {
				k := (i*7 + g*13) % keys
				got[g][k] = r.obtain(fmt.Sprint(k), &shared{})
				_ = r.lookup(fmt.Sprint((k + 1) % keys))
			}
		}()
	}
	wg.Wait()
	for k := range keys {
		for g := 1; g < goroutines; g++ {
			assert.Same(t, got[0][k], got[g][k], "key %d", k)
		}
		assert.Same(t, got[0][k], r.lookup(fmt.Sprint(k)))
	}
}

func TestRequestKey(t *testing.T) {
	for raw, want := range map[string]string{
		"https://API.example.com:443/x":  "api.example.com",
		"http://api.example.com:80":      "api.example.com",
		"http://api.example.com:443":     "api.example.com:443",
		"https://api.example.com:80":     "api.example.com:80",
		"http://127.0.0.1:8080":          "127.0.0.1:8080",
		"http://example.com:/":           "example.com",
		"http://[::1]:80/":               "[::1]",
		"http://[::1]:8080/":             "[::1]:8080",
		"https://[FE80::1%25en0]:8443/x": "[fe80::1%en0]:8443",
		"HTTPS://Example.COM:443":        "example.com",
	} {
		u, err := url.Parse(raw)
		if assert.NoError(t, err) {
			assert.Equal(t, want, requestKey(u), raw)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.com":            "api.example.com",
		" API.example.com ":          "api.example.com",
		"api.example.com:443":        "api.example.com:443",
		"api.example.com:":           "api.example.com",
		"api.example.com/menu?x#y":   "api.example.com",
		"user:pw@api.example.com":    "api.example.com",
		"https://api.example.com/x":  "api.example.com",
		"http://api.example.com:443": "api.example.com:443",
		"::1":                        "[::1]",
		"[::1]:8080":                 "[::1]:8080",
		"2001:DB8::1":                "[2001:db8::1]",
		"":                           "",
		"://":                        "",
		"http://%zz":                 "%zz",
	} {
		got := normalizeHost(in)
		assert.Equal(t, want, got, "%q", in)
		assert.Equal(t, got, normalizeHost(got), "idempotent for %q", in)
	}
	assert.Equal(t, "a.test", withoutDefaultPort("a.test:443"))
	assert.Equal(t, "a.test", withoutDefaultPort("a.test:80"))
	assert.Equal(t, "[::1]", withoutDefaultPort("[::1]:80"))
	assert.Equal(t, "", withoutDefaultPort("a.test:8080"))
	assert.Equal(t, "", withoutDefaultPort("a.test"))
}

// The bound holds when a call trips the host eviction picked before it is
// forgotten: eviction picks again instead of adding past the bound.
func TestBoundHoldsWhenTheVictimTripsFirst(t *testing.T) {
	s := &shared{policy: Policy{}.withDefaults(), now: time.Now, epoch: time.Now()}
	r := registry{max: 2}
	a := r.obtain("a.test", s)
	b := r.obtain("b.test", s)
	require.NotNil(t, a)
	require.NotNil(t, b)
	r.touch(b)
	tripped := 0
	r.picked = func(victims []*breaker) {
		for _, v := range victims {
			if v.load().state() == StateClosed && tripped == 0 {
				tripped++
				v.trip(s, v.load().gen(), verdict{outcome: Failure}, true) // a racing call opens it
			}
		}
	}
	c := r.obtain("c.test", s)
	require.NotNil(t, c)
	assert.Equal(t, 1, tripped)
	assert.LessOrEqual(t, r.evictable, r.max)
	assert.Len(t, r.all(), 2, "one of a and b forgotten, c tracked")
}

// With every evictable host busy (calls hold concurrency slots), a new key
// finds no room: obtain says so rather than forget a busy host or pass the
// bound.
func TestNoRoomWhenEveryHostIsBusy(t *testing.T) {
	s := &shared{policy: Policy{MaxConcurrent: 1}.withDefaults(), now: time.Now, epoch: time.Now(), ruleSet: newRuleSet(Policy{MaxConcurrent: 1})}
	r := registry{max: 2, slots: true}
	for _, key := range []string{"a.test", "b.test"} {
		b := r.obtain(key, s)
		require.NotNil(t, b)
		b.more.rules.slots.inFlight.Add(1)
	}
	assert.Nil(t, r.obtain("c.test", s))
	assert.Len(t, r.all(), 2)
	r.lookup("a.test").more.rules.slots.inFlight.Add(-1)
	assert.NotNil(t, r.obtain("c.test", s), "a is idle again: it makes room")
	assert.Nil(t, r.lookup("a.test"))
	assert.NotNil(t, r.lookup("b.test"), "b, busy, is kept")
}

// oldest puts the n oldest first, whatever the ages and their repeats.
func TestOldestSelectsTheOldest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		size := rng.IntN(40)
		pool := make([]aged, size)
		for i := range pool {
			pool[i].age = uint32(rng.IntN(1 + round%12)) // many repeats in some rounds
		}
		n := rng.IntN(size + 2)
		ages := make([]uint32, size)
		for i := range pool {
			ages[i] = pool[i].age
		}
		slices.Sort(ages)
		slices.Reverse(ages)
		oldest(pool, n)
		k := min(n, size)
		got := make([]uint32, k)
		for i := range got {
			got[i] = pool[i].age
		}
		slices.Sort(got)
		slices.Reverse(got)
		require.Equal(t, ages[:k], got, "round %d: size %d, n %d", round, size, n)
	}
}
