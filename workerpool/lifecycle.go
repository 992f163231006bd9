package workerpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
)

// start opens every worker's resources, in parallel, and starts serving.
// If any open fails, or ctx ends first, it closes everything that opened
// before returning.
func (p *Pool[R]) start(ctx context.Context) error {
	p.startOnce.Do(func() { p.startErr = p.doStart(ctx) })
	return p.startErr
}

func (p *Pool[R]) doStart(ctx context.Context) error {
	began := time.Now()
	n := p.cfg.workers
	if p.elastic != nil {
		n = p.cfg.minWorkers
	}
	if p.closed.Load() {
		return fmt.Errorf("workerpool: pool %q: start: %w", p.name, ErrClosed)
	}
	openCtx, cancelOpen := context.WithCancelCause(ctx)
	defer cancelOpen(nil)

	var (
		ready = make(chan openResult, n) // buffered: an opener never waits to report
		open  = make(chan struct{})      // closed once p.serving is set
		next  atomic.Int64               // the next worker to open
		// Openers open workers one after another. There are GOMAXPROCS at
		// first, and twice as many each time a tick passes in which fewer
		// opens finished than there are openers: a few suffice for quick
		// opens, whose reflection then grows a few goroutine stacks instead
		// of one per worker; slow opens soon get one opener each.
		openers int
		spawn   = func(k int) {
			for ; k > 0 && openers < p.cfg.startConcurrency && int(next.Load()) < n; k-- {
				openers++
				go p.opener(openCtx, n, &next, ready, open)
			}
		}
		tick = time.NewTicker(50 * time.Microsecond)
	)
	defer tick.Stop()
	spawn(runtime.GOMAXPROCS(0))

	var (
		firstErr error
		failed   int
		done     int // opens finished
		ticked   int // opens finished at the last tick
	)
	for done < n {
		select {
		case <-tick.C:
			if done-ticked < openers {
				spawn(openers)
			}
			if openers >= p.cfg.startConcurrency || int(next.Load()) >= n {
				tick.Stop() // no opener left to add
			}
			ticked = done
			continue
		case r := <-ready:
			done++
			if r.err != nil {
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("worker %d: %w", r.id, r.err)
					cancelOpen(firstErr)
				}
			}
			continue
		case <-ctx.Done():
			firstErr = fmt.Errorf("%w while workers were opening", context.Cause(ctx))
		}
		break
	}
	if firstErr == nil {
		for _, w := range p.workers[:n] {
			w.phase.Store(phaseServing) // before Start returns: Stats counts it
		}
		// The last look at ctx, as close to the return as can be: a start
		// that returns nil after its deadline is one fx gives up on and
		// may never stop.
		if ctx.Err() == nil {
			if e := p.elastic; e != nil {
				e.live = n
				go p.grower()
			}
			p.serving.Store(true)
			p.accepting.Store(true)
			close(open)
			p.record(PoolStarted{Pool: p.name, Workers: n, Took: time.Since(began)})
			return nil
		}
		// Every worker opened, but too late: roll back.
		firstErr = fmt.Errorf("%w as the last workers opened", context.Cause(ctx))
	}

	// Roll back: every worker closes what it opened. fx would roll back
	// with ctx, which may have expired, so the budget is a fresh one.
	cancelOpen(firstErr)
	spawn(n) // workers no opener reached yet give up at once
	close(open)
	rollback, cancel := rollbackContext(ctx, began)
	defer cancel()
	errs := []error{fmt.Errorf("workerpool: pool %q: start: %w", p.name, firstErr)}
	if failed > 1 {
		errs[0] = fmt.Errorf("%w (and %d other workers failed)", errs[0], failed-1)
	}
	if err := p.waitWorkers(rollback, "roll back"); err != nil {
		errs = append(errs, err)
	}
	p.refuse()
	p.finalSweep()
	err := errors.Join(errs...)
	p.record(PoolStarted{Pool: p.name, Workers: n, Took: time.Since(began), Err: err})
	return err
}

// rollbackContext gives a failed start as much time to roll back as it had
// to start: fx's own rollback would use the start context, maybe expired.
func rollbackContext(ctx context.Context, began time.Time) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithTimeout(base, dl.Sub(began))
	}
	return context.WithCancel(base)
}

type openResult struct {
	id  int
	err error
}

// refuse makes the pool refuse new tasks and wakes blocked submitters.
// Idempotent.
func (p *Pool[R]) refuse() {
	p.accepting.Store(false)
	p.closed.Store(true)
	p.closingOnce.Do(func() { close(p.closing) })
}

// countRestart records an attempt to restart a worker and reports whether
// the worker may go on. Past MaxRestarts within the window, it fails the
// pool.
func (p *Pool[R]) countRestart() bool {
	if p.cfg.maxRestarts > 0 {
		now := p.cfg.clock.Now()
		p.restartMu.Lock()
		recent := p.restartLog[:0]
		for _, t := range p.restartLog {
			if now.Sub(t) < p.cfg.restartWindow {
				recent = append(recent, t)
			}
		}
		p.restartLog = append(recent, now)
		over := len(p.restartLog) > p.cfg.maxRestarts
		p.restartMu.Unlock()
		if over {
			p.fail(fmt.Errorf("more than %d restarts within %v", p.cfg.maxRestarts, p.cfg.restartWindow))
		}
	}
	return p.runCtx.Err() == nil
}

// fail stops the pool from serving: it refuses new tasks, reports queued
// ones as not run, cancels running ones, and asks fx to stop the app with
// exit code 1. The workers keep their resources until the app stops them.
func (p *Pool[R]) fail(cause error) {
	p.failOnce.Do(func() {
		err := fmt.Errorf("workerpool: pool %q failed: %w", p.name, cause)
		p.record(PoolFailed{Pool: p.name, Err: err})
		p.refuse()
		p.cancelTasks()
		if p.sd != nil {
			if serr := p.sd.Shutdown(fx.ExitCode(1)); serr != nil {
				p.log.Error("asking fx to stop", zap.Error(serr))
			}
		}
	})
}

// finalSweep reports every task still queued as not run, once no worker
// will take one, and makes late submitters do the same for theirs.
func (p *Pool[R]) finalSweep() {
	p.swept.Store(true) // before the sweep: see enqueue
	p.sweep()
}

// sweep reports every task in the queue now as not run.
func (p *Pool[R]) sweep() {
	for {
		select {
		case t := <-p.q:
			if t.fn != nil { // no pill is left when the queue is swept
				p.drop(t)
			}
		default:
			return
		}
	}
}

func (p *Pool[R]) drop(t task[R]) {
	p.dropped.Add(1)
	if p.onDropped != nil {
		p.onDropped(t.fn)
	}
	if t.res != nil {
		t.res.finish(ErrClosed)
		return
	}
	p.cfg.onError(fmt.Errorf("task not run: %w", ErrClosed))
}

// stop refuses new tasks, lets the queue drain, cancels running tasks when
// half the budget is gone, and closes every worker's resources, all within
// three quarters of ctx's budget.
func (p *Pool[R]) stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.doStop(ctx) })
	return p.stopErr
}

func (p *Pool[R]) doStop(ctx context.Context) error {
	began := time.Now()
	own, cancel := context.WithCancel(ctx)
	cancelAt := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		budget := dl.Sub(began)
		cancel()
		own, cancel = context.WithDeadline(ctx, began.Add(budget*3/4))
		cancelAt = budget / 2
	}
	defer cancel()
	p.stopCtx = own // read by workers once they take their pill
	p.refuse()
	if p.cfg.stopPolicy == Cancel {
		p.cancelTasks()
	}
	if !p.serving.Load() { // never started, or the start failed and rolled back
		p.finalSweep()
		return nil
	}
	// The finisher queues one pill per worker, behind the tasks already
	// queued, waits for every worker to exit, and sweeps what late
	// submitters queued behind the pills. It outlives a stop that runs
	// out of time only as long as a stuck task or cleanup does.
	live := len(p.workers)
	if p.elastic != nil {
		live = p.stopGrowing()
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range live {
			p.q <- task[R]{}
		}
		for _, w := range p.workers {
			<-w.exited
		}
		p.finalSweep()
	}()

	if cancelAt >= 0 {
		t := time.AfterFunc(cancelAt, p.cancelTasks)
		defer t.Stop()
	}
	select {
	case <-finished:
	case <-own.Done():
	}
	err := p.waitWorkers(own, "stop")
	p.cancelTasks()
	if err != nil {
		err = fmt.Errorf("workerpool: pool %q: %w", p.name, err)
	}
	p.record(PoolStopped{Pool: p.name, Took: time.Since(began), Err: err})
	return err
}

// cancelTasks cancels running tasks and makes workers report queued ones as
// not run.
func (p *Pool[R]) cancelTasks() {
	p.dropping.Store(true)
	p.cancelRun(ErrClosed)
}

// waitWorkers waits until every worker has exited, and returns their
// teardown errors joined. If ctx ends first, it cancels running tasks and
// names every worker still busy and what it is busy with.
func (p *Pool[R]) waitWorkers(ctx context.Context, op string) error {
	for _, w := range p.workers {
		select {
		case <-w.exited:
			continue
		case <-ctx.Done():
		}
		break
	}
	if ctx.Err() != nil {
		p.cancelTasks()
	}
	var errs []error
	for _, w := range p.workers {
		select {
		case <-w.exited:
			if w.err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", w.id, w.err))
			}
			continue
		default:
		}
		if w.phase.Load() == phaseClosing {
			errs = append(errs, fmt.Errorf("%s: worker %d: %w", op, w.id, w.closing.Load().Stuck(context.Cause(ctx))))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: worker %d: stuck %s: %w", op, w.id, w.doing(), context.Cause(ctx)))
	}
	return errors.Join(errs...)
}
