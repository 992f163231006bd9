package workerpool

import (
	"fmt"
)

// Resize sets the number of workers of a fixed pool to n, at run time, as
// ants' Tune and pond's Resize do. It does not wait. Added workers open
// their resources on their own goroutines, retrying as a rebuild does,
// before they take tasks. Removed workers — any n of them — finish the task
// they are running, if any, and close their resources, in reverse order,
// exactly once; a waiting worker retires at once. Resize returns an error
// if n is below 1, if the pool is elastic (it sizes itself), or if it is
// not serving ([ErrNotStarted], [ErrClosed]). Resize is safe for
// concurrent use; the last call wins.
func (p *Pool[R]) Resize(n int) error {
	if n < 1 {
		return fmt.Errorf("workerpool: pool %q: Resize(%d): must be at least 1", p.name, n)
	}
	if p.elastic != nil {
		return fmt.Errorf("workerpool: pool %q: Resize: an elastic pool sizes itself between Elastic's bounds", p.name)
	}
	p.mu.Lock()
	switch p.state {
	case stateServing:
	case stateNew, stateStarting:
		p.mu.Unlock()
		return fmt.Errorf("workerpool: pool %q: Resize: %w", p.name, ErrNotStarted)
	default:
		p.mu.Unlock()
		return fmt.Errorf("workerpool: pool %q: Resize: %w", p.name, ErrClosed)
	}
	delta := n - p.size
	p.size = n
	// Workers still owed a retirement cancel out against growth.
	for delta > 0 {
		e := p.excess.Load()
		if e == 0 {
			break
		}
		if p.excess.CompareAndSwap(e, e-1) {
			delta--
		}
	}
	if delta > 0 {
		p.grow(delta)
	}
	p.mu.Unlock()
	if delta < 0 {
		// The excess first, then the wake: a worker counts itself waiting
		// before it looks at the excess (see wait), so none misses both.
		p.excess.Add(int32(-delta))
		p.wakeWaiting()
	}
	return nil
}

// grow launches k workers of a fixed pool, in free slots or new ones. p.mu
// must be held.
func (p *Pool[R]) grow(k int) {
	slots := p.all()
	for _, w := range slots {
		if k == 0 {
			return
		}
		if !w.slotted {
			w.slotted = true
			k--
			p.launch(w, (*worker[R]).openLater)
		}
	}
	if k == 0 {
		return
	}
	grown := append(make([]*worker[R], 0, len(slots)+k), slots...)
	for range k {
		grown = append(grown, &worker[R]{p: p, id: len(grown), slotted: true})
	}
	// Published before the new workers open: the pool's open callbacks
	// find a worker by its ID (see newPool).
	p.slots.Store(&grown)
	for _, w := range grown[len(slots):] {
		p.launch(w, (*worker[R]).openLater)
	}
}

// openLater is the boot of a worker opened after the start (a Resize, or
// the grower of an elastic pool): it opens on its own goroutine, retrying
// as a rebuild does, and then serves.
func (w *worker[R]) openLater() bool {
	p := w.p
	if err := w.open(p.tasks); err != nil {
		w.reopen(restart, err)
	}
	if e := p.elastic; e != nil {
		e.mu.Lock()
		e.opening--
		e.mu.Unlock()
	}
	return true
}

// retireExcess reports whether this worker retires because Resize asked
// for fewer workers, and takes its share of the excess if so.
func (p *Pool[R]) retireExcess() bool {
	if p.excess.Load() <= 0 {
		return false
	}
	for {
		e := p.excess.Load()
		if e <= 0 {
			return false
		}
		if p.excess.CompareAndSwap(e, e-1) {
			return true
		}
	}
}
