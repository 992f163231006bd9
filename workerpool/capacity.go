package workerpool

// Capacity is how much a pool can hold: a feeder sizes its window of tasks
// submitted and not yet finished with it.
type Capacity struct {
	// Workers is the number of workers the pool means to run now: for an
	// elastic pool, those open or opening; for a fixed one, its size, as
	// [Pool.Resize] last set it (workers it removed may still be finishing
	// a task). 0 once the pool has stopped.
	Workers int
	// MaxWorkers is the most workers the pool runs at once: Elastic's max,
	// or the fixed pool's size.
	MaxWorkers int
	// Queue is how many accepted tasks may wait for a worker: QueueSize.
	Queue int
}

// InFlight is how many tasks the pool holds, running or queued, when every
// worker is busy and the queue is full: MaxWorkers + Queue. A feeder that
// keeps at most that many unfinished blocks in Go only while some of those
// workers take no task: workers an elastic pool has yet to grow or that
// are opening, those a Resize adds until they have opened, a worker that
// rebuilds its resources. Go then waits for their opens, as it waits for
// room in a full queue.
func (c Capacity) InFlight() int { return c.MaxWorkers + c.Queue }

// Capacity returns the pool's capacity. It does not block.
func (p *Pool[R]) Capacity() Capacity {
	c := Capacity{Queue: p.q.Cap()}
	if p.current() == stateStopped {
		c.MaxWorkers = len(p.all())
		if p.elastic == nil {
			c.MaxWorkers = p.cfg.workers
		}
		return c
	}
	if e := p.elastic; e != nil {
		e.mu.Lock()
		c.Workers = e.live
		e.mu.Unlock()
		c.MaxWorkers = len(p.all())
		return c
	}
	p.mu.Lock()
	c.Workers = p.size
	p.mu.Unlock()
	c.MaxWorkers = c.Workers
	return c
}
