package workerpool

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The stop's budget is the time left until its context's deadline when
// OnStop begins. Queued tasks may start during the first two fifths of it
// (Drain); then the tasks still queued are reported as not run and the
// context of running tasks is cancelled. Every worker closes its resources
// as soon as it is free, and its cleanups get a context that ends at nine
// tenths of the budget: closing is never starved by draining. The last
// tenth is left to the hooks that stop after the pool, such as those of
// the app-scoped resources its workers use.
const (
	drainShareNum, drainShareDen = 2, 5
	closeShareNum, closeShareDen = 9, 10
)

// stop refuses new tasks, drains or drops the queue by policy, and closes
// every worker's resources, within the stop's budget. A second stop waits
// for the first and returns its result.
func (p *Pool[R]) stop(ctx context.Context) error {
	switch {
	case p.transition(stateStopped, stateNew):
		p.finalSweep()
		p.stopErr = nil
		close(p.stopped)
		return nil
	case p.transition(stateStopping, stateServing, stateFailed):
	case p.current() == stateStarting:
		// fx stops only hooks whose start returned: a concurrent stop is a
		// caller's mistake, and the start cleans up after itself.
		return fmt.Errorf("workerpool: pool %q: stop while starting", p.name)
	default:
		select {
		case <-p.stopped:
			return p.stopErr
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	p.mu.Lock()
	if p.guarded != nil {
		p.guarded.Stop() // this stop is the one StopGuard waited for
	}
	p.mu.Unlock()
	began := time.Now()
	closeCtx, cancelClose := context.WithCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		budget := dl.Sub(began)
		cancelClose()
		closeCtx, cancelClose = context.WithDeadline(ctx, began.Add(share(budget, closeShareNum, closeShareDen)))
		if p.cfg.stopPolicy == Drain {
			t := time.AfterFunc(share(budget, drainShareNum, drainShareDen), p.dropQueued)
			defer t.Stop()
		}
	}
	defer cancelClose()
	if p.cfg.stopPolicy == Cancel {
		p.dropQueued()
	}

	live, pills := p.workers, len(p.workers)
	if p.elastic != nil {
		live, pills = p.stopGrowing()
	}
	// One pill per worker, behind the tasks already queued: each worker
	// takes one when it is free and closes its resources with closeCtx.
pills:
	for range pills {
		select {
		case p.q <- task[R]{ctx: closeCtx}:
		case <-closeCtx.Done():
			break pills
		}
	}
	err := p.waitWorkers(closeCtx, live)
	if err != nil {
		err = fmt.Errorf("workerpool: pool %q: stop: %w", p.name, err)
		p.dropQueued()
		close(p.abandon) // a worker that comes back closes on its own
	}
	p.cancelTasks(ErrClosed)
	p.finalSweep()
	p.stopErr = err
	p.transition(stateStopped, stateStopping)
	close(p.stopped)
	p.record(PoolStopped{Pool: p.name, Took: time.Since(began), Err: err})
	return err
}

// dropQueued makes workers report queued tasks as not run, and cancels the
// context of running tasks.
func (p *Pool[R]) dropQueued() {
	p.dropping.Store(true)
	p.cancelTasks(ErrClosed)
}

// waitWorkers waits until every worker of ws has ended, and returns their
// teardown errors joined. If ctx ends first, it names every worker still
// running and what it is stuck in.
func (p *Pool[R]) waitWorkers(ctx context.Context, ws []*worker[R]) error {
wait:
	for _, w := range ws {
		if w.exited == nil {
			continue // a slot never used
		}
		select {
		case <-w.exited:
		case <-ctx.Done():
			break wait
		}
	}
	var errs []error
	for _, w := range ws {
		if w.exited == nil {
			continue
		}
		select {
		case <-w.exited:
			if w.err != nil {
				errs = append(errs, &workerError{w.id, w.err})
			}
			continue
		default:
		}
		if w.phase.Load() == phaseClosing {
			errs = append(errs, &workerError{w.id, w.closing.Load().Stuck(context.Cause(ctx))})
			continue
		}
		errs = append(errs, &workerError{w.id, fmt.Errorf("stuck %s: %w", w.doing(), context.Cause(ctx))})
	}
	return errors.Join(errs...)
}
