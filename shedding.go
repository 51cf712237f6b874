package httpbreaker

import "sync/atomic"

// shedding is what a host's overload rules — the throttle and the
// concurrency cap — share about their refusals: how many, the latest, and
// the news that a closed circuit started or stopped refusing calls for
// overload, which listeners hear through the host's event queue. Made with
// the host when the policy sets Throttle or MaxConcurrent.
type shedding struct {
	// shed counts refusals for overload since the host was first tracked.
	shed atomic.Uint64
	// lastShed is the clock offset of the latest.
	lastShed atomic.Int64
}

// refused counts a refusal for overload made at now; the first one while
// closed (a probe's never) tells listeners the host sheds.
func (sh *shedding) refused(s *shared, b *breaker, now int64, probe bool) {
	sh.shed.Add(1)
	sh.lastShed.Store(now)
	if !probe && !b.more.events.shedding.Load() {
		b.announceShedding(s, now, true)
	}
}

// account tells listeners a host stopped shedding once a closed-path
// call ends a full quiet period (ruleWindow) after the last refusal. While
// the host is not shedding it costs one atomic load (inlined).
func (sh *shedding) account(s *shared, b *breaker, v verdict) {
	if b.more.events.shedding.Load() {
		sh.quietAfter(s, b, v)
	}
}

func (sh *shedding) quietAfter(s *shared, b *breaker, v verdict) {
	if !v.timed {
		v.at = s.clock()
	}
	if v.at-sh.lastShed.Load() >= int64(s.policy.ruleWindow()) {
		b.announceShedding(s, v.at, false)
	}
}

// status fills the shedding part of a host's status.
func (sh *shedding) status(s *shared, st *HostStatus, now int64) {
	st.Total.Shed = sh.shed.Load()
	st.Shedding = st.State == StateClosed && st.Total.Shed > 0 && now-sh.lastShed.Load() < int64(s.policy.ruleWindow())
}

// shedding reports whether b's host, closed, is shedding load now: what
// listeners last heard. Always false unless Throttle or MaxConcurrent.
func (b *breaker) shedding(s *shared) bool { return s.sheds && b.more.events.shedding.Load() }

// announceShedding tells listeners, through the host's event queue, that
// b's host, closed, starts (on) or stops shedding load. A circuit that is
// not closed, or forgotten, has nothing to announce: its transitions carry
// the news.
func (b *breaker) announceShedding(s *shared, now int64, on bool) {
	b.mu.Lock()
	q := &b.more.events
	if q.shedding.Load() != on && b.load().state() == StateClosed && !b.forgotten.Load() {
		q.shedNews(s, b.host, q.after(now), on)
	}
	b.unlockAndNotify(s)
}

// shedNews sets the shedding flag and queues the news, a closed-to-closed
// Transition at now, for the listeners: the one place a start or stop is
// written, whether the rules decide it or a state change ends it.
// Requires the breaker's mu.
func (q *eventQueue) shedNews(s *shared, host string, now int64, on bool) {
	q.shedding.Store(on)
	q.lastAt = now
	if len(s.listeners) > 0 {
		q.pending = append(q.pending, Transition{Host: host, From: StateClosed, To: StateClosed, At: s.instant(now), Shedding: on})
	}
}
