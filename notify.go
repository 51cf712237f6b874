package httpbreaker

// unlockAndNotify releases b.mu, then delivers any queued transitions.
// Requires b.mu held.
func (b *breaker) unlockAndNotify(s *settings) {
	pending := b.events != nil && len(*b.events) > 0 && !b.notifying
	b.mu.Unlock()
	if pending {
		b.notify(s)
	}
}

// notify delivers queued transitions to the listeners, outside the lock and
// in order: one goroutine at a time drains the queue, so a transition made
// by a listener (say, through ClearState) is delivered after the one that
// called it. If a listener panics, the panic goes on up and the remaining
// events wait for the next transition.
func (b *breaker) notify(s *settings) {
	b.mu.Lock()
	if b.notifying {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	finished := false
	defer func() {
		if !finished {
			b.mu.Lock()
			b.notifying = false
			b.mu.Unlock()
		}
	}()
	for len(*b.events) > 0 {
		ev := (*b.events)[0]
		*b.events = (*b.events)[1:]
		b.mu.Unlock()
		for _, listen := range s.listeners {
			listen(ev)
		}
		b.mu.Lock()
	}
	*b.events = nil
	b.notifying = false
	finished = true
	b.mu.Unlock()
}
