package httpbreaker

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWordPacking(t *testing.T) {
	w := packWord(StateHalfOpen, maxCount, 1<<32-1)
	assert.Equal(t, StateHalfOpen, w.state())
	assert.Equal(t, maxCount, w.failures())
	assert.Equal(t, uint32(1<<32-1), w.gen())
	w = w.withFailures(7)
	assert.Equal(t, 7, w.failures())
	assert.Equal(t, StateHalfOpen, w.state())
	assert.Equal(t, uint32(1<<32-1), w.gen())
	next := packWord(StateOpen, 0, w.gen()+1)
	assert.Equal(t, uint32(0), next.gen(), "the generation wraps")
	assert.Equal(t, StateOpen, next.state())
}
