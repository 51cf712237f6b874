package httpbreaker

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegistryTracksEachKeyOnce(t *testing.T) {
	var r registry
	assert.Nil(t, r.lookup("a"), "looking does not track")
	a := r.obtain("a", &settings{})
	require.NotNil(t, a)
	assert.Same(t, a, r.obtain("a", &settings{}))
	assert.Same(t, a, r.lookup("a"))
	assert.Equal(t, "a", a.host)

	for i := range 100 { // enough misses to publish the dirty map, more than once
		r.obtain(fmt.Sprint(i), &settings{})
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
				got[g][k] = r.obtain(fmt.Sprint(k), &settings{})
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
