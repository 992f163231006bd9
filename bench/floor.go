package bench

import "sync"

// Pool is a hand-written pool of W goroutines reading func() tasks from a
// buffered channel: the floor every pool is measured against.
//
// Go blocks while the channel is full. Stop closes the channel, lets the
// workers finish what was queued and waits for them.
type Pool struct {
	tasks chan func()
	wg    sync.WaitGroup
}

// NewPool starts w workers and a queue of queue tasks.
func NewPool(w, queue int) *Pool {
	p := &Pool{tasks: make(chan func(), queue)}
	p.wg.Add(w)
	for range w {
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	defer p.wg.Done()
	for f := range p.tasks {
		f()
	}
}

// Go enqueues f; it blocks while the queue is full.
func (p *Pool) Go(f func()) { p.tasks <- f }

// Stop runs the queued tasks, then stops and waits for every worker.
func (p *Pool) Stop() {
	close(p.tasks)
	p.wg.Wait()
}

// TypedPool is the typed twin of [Pool]: its workers read values of type T
// and call one function fixed at construction, so no closure is made per
// task.
type TypedPool[T any] struct {
	tasks chan T
	fn    func(T)
	wg    sync.WaitGroup
}

// NewTypedPool starts w workers that call fn for every value sent with Go.
func NewTypedPool[T any](w, queue int, fn func(T)) *TypedPool[T] {
	p := &TypedPool[T]{tasks: make(chan T, queue), fn: fn}
	p.wg.Add(w)
	for range w {
		go p.work()
	}
	return p
}

func (p *TypedPool[T]) work() {
	defer p.wg.Done()
	for v := range p.tasks {
		p.fn(v)
	}
}

// Go enqueues v; it blocks while the queue is full.
func (p *TypedPool[T]) Go(v T) { p.tasks <- v }

// Stop runs the queued values, then stops and waits for every worker.
func (p *TypedPool[T]) Stop() {
	close(p.tasks)
	p.wg.Wait()
}

// ResourcePool is the floor for per-worker resources: W goroutines, each
// opening its own resource when it starts and closing it when it stops,
// reading func(R) tasks from a buffered channel.
type ResourcePool[R any] struct {
	tasks chan func(R)
	ready sync.WaitGroup
	done  sync.WaitGroup
}

// StartResourcePool starts w workers, each calling open, and returns when
// every worker has opened its resource. close runs in each worker as it stops.
func StartResourcePool[R any](w, queue int, open func(id int) R, close func(R)) *ResourcePool[R] {
	p := &ResourcePool[R]{tasks: make(chan func(R), queue)}
	p.ready.Add(w)
	p.done.Add(w)
	for id := range w {
		go p.work(id, open, close)
	}
	p.ready.Wait()
	return p
}

func (p *ResourcePool[R]) work(id int, open func(int) R, close func(R)) {
	defer p.done.Done()
	r := open(id)
	p.ready.Done()
	defer close(r)
	for f := range p.tasks {
		f(r)
	}
}

// Go enqueues f; it blocks while the queue is full.
func (p *ResourcePool[R]) Go(f func(R)) { p.tasks <- f }

// Stop runs the queued tasks, then stops every worker, which closes its
// resource, and waits for them.
func (p *ResourcePool[R]) Stop() {
	close(p.tasks)
	p.done.Wait()
}
