package workerpool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The stop's budget is the time left until its context's deadline when
// the stop begins. Feeders (see AddFeeder) stop feeding first, within the
// first two fifths of it, while the pool still takes their last tasks.
// Queued tasks may start until two fifths of the budget (Drain); then the
// tasks still queued are reported as not run and the context of running
// tasks is cancelled. Every worker closes its resources as soon as it is
// free, and its cleanups get a context that ends at nine tenths of the
// budget: closing is never starved by draining. The last tenth is left to
// the hooks that stop after the pool, such as those of the app-scoped
// resources its workers use.
const (
	drainShareNum, drainShareDen = 2, 5
	closeShareNum, closeShareDen = 9, 10
)

// Stop stops the pool now, without waiting for the app to: feeders stop
// feeding, the pool refuses new tasks ([ErrClosed]), treats the queued ones
// by policy, and closes every worker's resources, all within ctx's budget
// as the package documentation details. It blocks until the pool has
// stopped or nine tenths of ctx's budget are gone, and returns the joined
// teardown errors, or an error naming every worker still stuck and what it
// is stuck in.
//
// The pool's OnStop hook, when the app stops, waits for a stop already
// under way and returns its result; so does a second Stop. A pool that has
// not started is simply closed. A pool that is starting stops starting: its
// start rolls back what opened and fails with [ErrClosed], and Stop returns
// once the rollback is over. The teardown errors are those of the closes
// the stop makes: a close before it (a rebuild, a Resize, an elastic
// retirement) reports its error then, in its WorkerClosed event. Stop is
// safe for concurrent use.
func (p *Pool[R]) Stop(ctx context.Context, policy StopPolicy) error {
	if ctx == nil {
		return ErrNilContext
	}
	if policy != Drain && policy != Cancel && policy != DropQueued {
		return fmt.Errorf("workerpool: pool %q: Stop: unknown %v", p.name, policy)
	}
	return p.shutdown(ctx, policy)
}

// stopStart makes a start under way give up, and reports whether the pool
// was starting.
func (p *Pool[R]) stopStart() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateStarting {
		return false
	}
	p.cancelStart(errStopWhileStarting)
	return true
}

// stopNotBegun reports whether no stop has begun: the pool is new,
// starting or serving, or failed before any stop.
func (p *Pool[R]) stopNotBegun() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state <= stateServing || p.state == stateFailed && !p.stopBegun
}

// stop is the pool's OnStop hook.
func (p *Pool[R]) stop(ctx context.Context) error { return p.shutdown(ctx, p.cfg.stopPolicy) }

// shutdown is every stop: feeders stop feeding, then the pool refuses new
// tasks, drains or drops the queue by policy, and closes every worker's
// resources, within the stop's budget. A second stop waits for the first
// and returns its result.
func (p *Pool[R]) shutdown(ctx context.Context, policy StopPolicy) error {
	switch {
	case p.transition(stateStopped, stateNew):
		p.finalSweep()
		close(p.stopped)
		return nil
	case p.transition(stateStopping, stateServing):
	case p.transitionIf(stateDraining, func() bool { return !p.stopBegun }, stateFailed):
		// A failed pool takes no tasks, but its feeders are still told to
		// stop feeding: nothing else would end them. One that failed while
		// a stop stopped its feeders is that stop's.
	case p.stopStart():
		// The start gives up, rolls back and fails with ErrClosed; or it
		// served just before, and this stop stops it. (fx stops only hooks
		// whose start returned: this is a Pool.Stop.)
		select {
		case <-p.startEnded:
			return p.shutdown(ctx, policy)
		case <-ctx.Done():
			return fmt.Errorf("workerpool: pool %q: stop: the start under way did not end in time: %w",
				p.name, errors.Join(context.Cause(ctx), p.stuck(len(p.all()))))
		}
	case p.stopNotBegun():
		// The cases above look at the state one after another: a start
		// that began serving (or failed) after they looked is stopped
		// by looking again. States only move forward.
		return p.shutdown(ctx, policy)
	default:
		return p.awaitStop(ctx)
	}
	p.mu.Lock()
	if p.guarded != nil {
		p.guarded.Stop() // this stop is the one StopGuard waited for
	}
	feeders := p.feeders
	p.mu.Unlock()

	began := time.Now()
	closeCtx, cancelClose := context.WithCancel(ctx)
	drainCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		budget := dl.Sub(began)
		cancelClose()
		closeCtx, cancelClose = context.WithDeadline(ctx, began.Add(share(budget, closeShareNum, closeShareDen)))
		var cancelDrain context.CancelFunc
		drainCtx, cancelDrain = context.WithDeadline(ctx, began.Add(share(budget, drainShareNum, drainShareDen)))
		defer cancelDrain()
		p.drainsUntil.Store(policy == Drain)
		if policy != Cancel {
			t := time.AfterFunc(share(budget, drainShareNum, drainShareDen), p.dropQueued)
			defer t.Stop()
		}
	}
	defer cancelClose()

	// Feeders stop feeding while the pool still takes their last tasks.
	errs := p.stopFeeders(drainCtx, feeders)
	p.transition(stateDraining, stateStopping, stateFailed)
	if policy != Drain {
		p.beginDropping() // a task taken from now on is reported as not run
	}
	p.awaitSubmitters() // every task taken is queued ahead of the pills
	if policy != Drain {
		p.sweep() // report what is queued now, before any pill is
	}
	if policy == Cancel {
		// Only now: a task of a group or a Map that the cancel makes fail
		// would end the context of its siblings still queued, which would
		// then count as given up by their submitter rather than dropped
		// (OnDropped).
		p.cancelRunning(ErrClosed)
	}

	live := p.all()
	// One pill per worker, behind the tasks already queued: each worker
	// takes one when it is free and closes its resources with closeCtx.
	p.q.End(task[R]{ctx: closeCtx}, p.pills())
	if err := p.waitWorkers(closeCtx, live); err != nil {
		errs = append(errs, err)
		p.dropQueued()
		close(p.abandon) // a worker that comes back closes on its own
		p.wakeWaiting()
	}
	p.cancelRunning(ErrClosed)
	p.finalSweep()
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("workerpool: pool %q: stop: %w", p.name, errors.Join(errs...))
	}
	p.stopErr = err
	p.transition(stateStopped, stateDraining)
	// Heard before any stop returns, this one or one that waits for it (the
	// app's, after StopGuard's): an Events hook that waits for the pool's
	// stop would wait for itself.
	p.record(PoolStopped{Pool: p.name, Took: time.Since(began), Err: err})
	close(p.stopped)
	return err
}

// pills returns how many workers will take a stop's pill, and freezes the
// pool's size: no more growth, retirement or resizing.
func (p *Pool[R]) pills() int {
	if p.elastic != nil {
		return p.stopGrowing()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size // workers above it retire on their own (see Resize)
}

// stopFeeders stops every feeder, one after another, and returns their
// errors, each naming its feeder by the order it was added. A feeder's stop
// runs on a goroutine of its own, waited for until ctx ends: one that
// ignores ctx is reported as stuck, and the stop goes on.
func (p *Pool[R]) stopFeeders(ctx context.Context, feeders []func(context.Context) error) []error {
	var errs []error
	for i, stop := range feeders {
		done := make(chan error, 1)
		go func() { done <- p.guardErr("its stop", func() error { return stop(ctx) }) }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("stuck in its stop, which ignores its context: %w", context.Cause(ctx))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("feeder %d: %w", i+1, err))
		}
	}
	return errs
}

// dropQueued makes workers report queued tasks as not run, and cancels the
// context of running tasks.
func (p *Pool[R]) dropQueued() {
	p.beginDropping()
	p.cancelRunning(ErrClosed)
}

// beginDropping makes workers report queued tasks as not run, and ends
// the pauses of workers that retry a failed open: there is nothing left
// for them to run. Until then — under Drain, until two fifths of the stop
// budget — they go on retrying, so that the queued tasks may still run.
func (p *Pool[R]) beginDropping() {
	if p.dropping.CompareAndSwap(false, true) {
		close(p.drops)
	}
}

// AddFeeder registers the stop of a feeder — a goroutine that submits the
// pool's tasks, such as a message queue's consumer — so that it takes part
// in the pool's stop: every stop of the pool first calls stop, with a
// context that ends at two fifths of the stop's budget, while the pool
// still takes tasks; stop must end the feeding and return. Only then does
// the pool refuse new tasks and drain. Feeders are stopped one after
// another, in the order they were added; an error or panic of stop is
// joined to the stop's error. AddFeeder returns [ErrClosed] once the pool
// has begun to stop.
func (p *Pool[R]) AddFeeder(stop func(ctx context.Context) error) error {
	if stop == nil {
		return fmt.Errorf("workerpool: pool %q: AddFeeder: nil func", p.name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state > stateServing {
		return fmt.Errorf("workerpool: pool %q: AddFeeder: %w", p.name, ErrClosed)
	}
	p.feeders = append(p.feeders, stop)
	return nil
}

// awaitStop waits for the stop under way, as a second stop does: until it
// has returned, whose result it returns, or until nine tenths of ctx's
// budget are gone, as a first stop would; it then names the workers still
// stuck and what each is stuck in.
func (p *Pool[R]) awaitStop(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Now().Add(share(time.Until(dl), closeShareNum, closeShareDen)))
		defer cancel()
	}
	select {
	case <-p.stopped:
		return p.stopErr
	case <-ctx.Done():
	}
	cause := context.Cause(ctx)
	return fmt.Errorf("workerpool: pool %q: stop: the stop under way did not end in time: %w", p.name,
		errors.Join(cause, p.waitWorkers(ctx, p.all())))
}

// waitWorkers waits until every worker of ws has ended, and returns their
// teardown errors joined. If ctx ends first, it names every worker still
// running and what it is stuck in.
//
// It takes the launch lock twice in all, not twice a worker: exiting
// workers take it too, and ten thousand of them exit at once. Launches
// are made under that lock — the grower's under the elastic state's,
// Resize's under the pool's — and a second stop waits for workers while a
// first one may not have stopped them yet: a worker's error is read only
// if it has not been launched again since. The workers still running are
// waited for on one channel, which the last of them to exit closes; a
// worker that another stop waits for already is waited for on that one's.
func (p *Pool[R]) waitWorkers(ctx context.Context, ws []*worker[R]) error {
	mu := p.launchLock()
	launches := make([]uint32, len(ws))
	var mine *exitWait
	var waits []*exitWait // mine and others', covering every worker still running
	mu.Lock()
	for i, w := range ws {
		launches[i] = w.launches
		switch {
		case !w.slotted: // a slot never used, or a worker gone already
		case w.waited == nil:
			if mine == nil {
				mine = &exitWait{done: make(chan struct{})}
				waits = append(waits, mine)
			}
			mine.left.Add(1) // no exit counts down before the lock is let go
			w.waited = mine
		case !slices.Contains(waits, w.waited):
			waits = append(waits, w.waited)
		}
	}
	mu.Unlock()
wait:
	for _, e := range waits {
		select {
		case <-e.done:
		case <-ctx.Done():
			break wait
		}
	}
	var errs []error
	var running []*worker[R]
	mu.Lock()
	for i, w := range ws {
		switch {
		case w.launches != launches[i]: // launched again since: not this wait's
		case w.slotted:
			running = append(running, w)
		case w.err != nil:
			errs = append(errs, &workerError{w.id, w.err})
		}
	}
	mu.Unlock()
	for _, w := range running {
		if w.phase.Load() == phaseClosing {
			// Nil if its cleanups have all returned, without error, since.
			if err := w.closing.Load().Stuck(context.Cause(ctx)); err != nil {
				errs = append(errs, &workerError{w.id, err})
				continue
			}
		}
		errs = append(errs, &workerError{w.id, fmt.Errorf("stuck %s: %w", w.doing(), context.Cause(ctx))})
	}
	return errors.Join(errs...)
}

// launchLock is the lock that launches after the start are made under.
func (p *Pool[R]) launchLock() *sync.Mutex {
	if e := p.elastic; e != nil {
		return &e.mu
	}
	return &p.mu
}
