package workerpool

import "sync"

// elastic is the state of a pool sized by Elastic. Slots of the pool (see all) hold
// the workers; a free slot is reused by the next worker grown.
type elastic struct {
	mu       sync.Mutex
	live     int  // workers that will take a pill: opening or serving; guarded by mu
	stopping bool // no more growth or retirement; guarded by mu

	opening int // workers grown and not serving yet; guarded by mu
	grow    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

func newElastic() *elastic {
	return &elastic{
		grow:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// wake asks the grower to look at the queue. It never blocks.
func (e *elastic) wake() {
	select {
	case e.grow <- struct{}{}:
	default:
	}
}

// grower opens workers while tasks wait and none is idle. It is started by
// the start and ended and waited for by the stop.
func (p *Pool[R]) grower() {
	e := p.elastic
	defer close(e.stopped)
	for {
		select {
		case <-e.grow:
		case <-e.stop:
			return
		}
		for p.growOne() {
		}
	}
}

// growOne opens one more worker if the queue calls for it.
func (p *Pool[R]) growOne() bool {
	e := p.elastic
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping || e.live >= len(p.all()) || p.q.Idle() > 0 || p.q.Len() <= e.opening {
		return false
	}
	return p.growSlot()
}

// growSlot launches a worker in a free slot. e.mu must be held.
func (p *Pool[R]) growSlot() bool {
	e := p.elastic
	for _, w := range p.all() {
		if !w.slotted {
			w.slotted = true
			e.live++
			e.opening++
			p.launch(w, (*worker[R]).openLater)
			return true
		}
	}
	return false
}

// stopGrowing stops the grower and freezes the workers: it returns how
// many will take a pill (those retiring will not). If tasks wait to be
// drained and no worker is left, it grows one to run them.
func (p *Pool[R]) stopGrowing() int {
	e := p.elastic
	e.mu.Lock()
	if e.live == 0 && p.q.Len() > 0 && !p.dropping.Load() {
		p.growSlot()
	}
	e.stopping = true
	n := e.live
	e.mu.Unlock()
	// A stop reaches here only after a start that succeeded: the grower runs.
	close(e.stop)
	<-e.stopped
	return n
}

// nextElastic is next for an elastic pool: a worker that waits longer than
// the idle timeout may retire.
func (w *worker[R]) nextElastic(t *task[R]) bool {
	p, e := w.p, w.p.elastic
	*t = task[R]{} // an idle worker keeps no task alive
	w.idle()
	w.forgetEnded()
	for {
		timeout := make(chan struct{})
		timer := p.cfg.clock.AfterFunc(p.cfg.idle, func() { close(timeout) })
		if p.q.Pop(t, p.abandon, timeout) {
			timer.Stop()
			if p.q.Len() > 0 && p.q.Idle() == 0 {
				e.wake() // tasks still wait and this worker is taken: maybe grow
			}
			return true
		}
		select {
		case <-p.abandon:
			timer.Stop()
			return false
		default: // timed out
		}
		if got, ok, retired := p.retire(); ok || retired {
			*t = got
			return ok
		}
	}
}

// retire decides whether a worker that idled for the idle timeout closes:
// not at or below min, not once the pool stops (every live worker is owed
// a pill), and not if a task came meanwhile — it gets that task instead.
func (p *Pool[R]) retire() (t task[R], got, retired bool) {
	e := p.elastic
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.q.TryPop(&t) {
		return t, true, false
	}
	if e.stopping || e.live <= p.cfg.minWorkers {
		return task[R]{}, false, false
	}
	e.live--
	return task[R]{}, false, true
}
