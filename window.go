package httpbreaker

import "sync/atomic"

// rateWindow counts successes and failures over the last Window in
// windowBuckets buckets of Window/windowBuckets. Each bucket is one atomic
// word, so recording is a load and a CAS, with no lock and no allocation;
// its memory is fixed whatever the traffic.
type rateWindow struct {
	buckets [windowBuckets]atomic.Uint64
	// lastFailure is 1 + the bucket index of the latest failure, 0 if none:
	// a success needs the sums only if a failure is still in the window.
	lastFailure atomic.Int64
	// newest is the highest bucket index recorded. Each slot the window's
	// end passes over on its way there is emptied, so a slot only ever
	// holds one of the last windowBuckets buckets: 24-bit tags then never
	// alias, however long a slot went unused.
	newest atomic.Int64
}

const windowBuckets = 10

// A bucket word packs, from the high bits down: the bucket's tag (the low 24
// bits of its index, the instant divided by the bucket width), its failures
// (20 bits) and its successes (20 bits). When a count would overflow, both
// are halved: the ratio survives, and the volume is far above any minimum.
const (
	bucketCountBits = 20
	bucketCountMask = 1<<bucketCountBits - 1
	bucketTagShift  = 2 * bucketCountBits
	bucketTagMask   = 1<<24 - 1
)

func bucketTag(index int64) uint64 { return uint64(index) & bucketTagMask }

func bucketSlot(index int64) int {
	return int((index%windowBuckets + windowBuckets) % windowBuckets)
}

// record counts one outcome in the bucket of index and reports whether a
// failure may be in the window that ends there.
func (w *rateWindow) record(index int64, failure bool) (failures bool) {
	w.advance(index)
	w.add(index, failure)
	if failure {
		for last := w.lastFailure.Load(); last < index+1; last = w.lastFailure.Load() {
			if w.lastFailure.CompareAndSwap(last, index+1) {
				break
			}
		}
		return true
	}
	return w.failedWithin(index)
}

// failedWithin reports whether a failure may be in the window that ends
// with the bucket of index.
func (w *rateWindow) failedWithin(index int64) bool {
	last := w.lastFailure.Load()
	return last != 0 && index-(last-1) < windowBuckets
}

// advance moves the window's end to index, if that is later, emptying the
// slots of the buckets it passes over (all of them after a long silence).
func (w *rateWindow) advance(index int64) {
	for {
		newest := w.newest.Load()
		if index <= newest {
			return
		}
		if w.newest.CompareAndSwap(newest, index) {
			for i := max(newest+1, index-windowBuckets+1); i <= index; i++ {
				w.empty(i)
			}
			return
		}
	}
}

// empty clears the slot of bucket index unless it already holds that
// bucket (a call beside this one recorded there first).
func (w *rateWindow) empty(index int64) {
	slot := &w.buckets[bucketSlot(index)]
	for {
		old := slot.Load()
		if old == 0 || old>>bucketTagShift == bucketTag(index) || slot.CompareAndSwap(old, 0) {
			return
		}
	}
}

func (w *rateWindow) add(index int64, failure bool) {
	slot := &w.buckets[bucketSlot(index)]
	tag := bucketTag(index)
	for {
		old := slot.Load()
		successes, failures := old&bucketCountMask, old>>bucketCountBits&bucketCountMask
		if old>>bucketTagShift != tag { // a bucket from an earlier lap
			successes, failures = 0, 0
		}
		if failure {
			failures++
		} else {
			successes++
		}
		if successes > bucketCountMask || failures > bucketCountMask {
			successes, failures = successes/2, failures/2
		}
		if slot.CompareAndSwap(old, tag<<bucketTagShift|failures<<bucketCountBits|successes) {
			return
		}
	}
}

// counts sums the buckets of the window that ends with the bucket of index.
func (w *rateWindow) counts(index int64) (successes, failures int) {
	now := bucketTag(index)
	for i := range w.buckets {
		word := w.buckets[i].Load()
		if age := (now - word>>bucketTagShift) & bucketTagMask; age < windowBuckets {
			successes += int(word & bucketCountMask)
			failures += int(word >> bucketCountBits & bucketCountMask)
		}
	}
	return successes, failures
}

// reset empties the window.
func (w *rateWindow) reset() {
	for i := range w.buckets {
		w.buckets[i].Store(0)
	}
	w.lastFailure.Store(0)
}

// exceeded reports whether the window ending with the bucket of index holds
// at least minimum calls and a failure ratio of at least ratio.
func (w *rateWindow) exceeded(index int64, minimum int, ratio float64) bool {
	successes, failures := w.counts(index)
	total := successes + failures
	return total >= minimum && float64(failures) >= ratio*float64(total)
}

// bucket is the index of the rate-window bucket that holds offset off.
func (s *shared) bucket(off int64) int64 {
	width := int64(s.window / windowBuckets)
	if width == 0 {
		width = 1
	}
	if off < 0 {
		return (off - width + 1) / width
	}
	return off / width
}
