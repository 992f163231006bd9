package workerpool

import (
	"context"
	"sync"
	"sync/atomic"
)

// elastic is the state of a pool sized by Elastic. Slots of p.workers hold
// the workers; a vacant slot is reused by the next worker opened.
type elastic struct {
	mu       sync.Mutex
	live     int  // workers in their slots, opening or serving; guarded by mu
	stopping bool // no more growth or retirement; guarded by mu

	idle    atomic.Int32 // workers parked waiting for a task
	opening atomic.Int32 // workers opened on demand and not serving yet
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
// the start and stopped by the stop.
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
	if e.stopping || e.live >= len(p.workers) || e.idle.Load() > 0 || len(p.q) <= int(e.opening.Load()) {
		return false
	}
	return p.openSlot()
}

// openSlot starts a worker in a vacant slot. e.mu must be held.
func (p *Pool[R]) openSlot() bool {
	e := p.elastic
	for _, w := range p.workers {
		if w.phase.Load() == phaseVacant {
			e.live++
			e.opening.Add(1)
			w.phase.Store(phaseOpening)
			w.exited = make(chan struct{})
			w.err = nil
			go w.runGrown()
			return true
		}
	}
	return false
}

// stopGrowing stops the grower and freezes the number of live workers,
// which it returns: that many will take a pill. If tasks wait to be
// drained and no worker is left, it opens one to run them.
func (p *Pool[R]) stopGrowing() int {
	e := p.elastic
	e.mu.Lock()
	if e.live == 0 && len(p.q) > 0 && !p.dropping.Load() {
		p.openSlot()
	}
	e.stopping = true
	live := e.live
	e.mu.Unlock()
	close(e.stop)
	<-e.stopped
	return live
}

// retire reports whether an idle worker may close: only above min, and not
// once the pool is stopping, when every live worker is owed a pill.
func (p *Pool[R]) retire() bool {
	e := p.elastic
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping || e.live <= p.cfg.minWorkers {
		return false
	}
	e.live--
	return true
}

// runGrown is the goroutine of a worker opened on demand.
func (w *worker[R]) runGrown() {
	p := w.p
	w.gen++ // a new generation in this slot
	if err := w.open(p.runCtx); err != nil {
		w.reopen(restart, err)
	}
	p.elastic.opening.Add(-1)
	w.phase.Store(phaseServing)
	w.serveElastic()
}

// serveElastic is serve for an elastic pool: a worker parked for longer
// than the idle timeout may retire, closing its resources.
func (w *worker[R]) serveElastic() {
	p, e := w.p, w.p.elastic
	for {
		var t task[R]
		select {
		case t = <-p.q:
		default:
			e.idle.Add(1)
			timeout := make(chan struct{})
			timer := p.cfg.clock.AfterFunc(p.cfg.idle, func() { close(timeout) })
			select {
			case t = <-p.q:
				timer.Stop()
				e.idle.Add(-1)
			case <-timeout:
				e.idle.Add(-1)
				if p.retire() {
					w.vacate(context.WithoutCancel(p.runCtx))
					w.err = nil // not a stop's error: recorded as a WorkerClosed event
					close(w.exited)
					w.phase.Store(phaseVacant)
					return
				}
				continue
			}
		}
		if len(p.q) > 0 && e.idle.Load() == 0 {
			e.wake() // tasks still wait and this worker is taken: maybe grow
		}
		if t.fn == nil {
			w.vacate(p.stopCtx)
			close(w.exited)
			w.phase.Store(phaseVacant)
			return
		}
		w.handle(t)
	}
}

// vacate closes the worker's resources. Its caller then frees the slot by
// setting phaseVacant, after which the worker touches none of its fields.
func (w *worker[R]) vacate(ctx context.Context) {
	if w.scope != nil {
		w.close(ctx)
	}
}
