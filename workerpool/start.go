package workerpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The start's budget is the time left until its context's deadline when
// OnStart begins. Opening gets the first two thirds of it; rolling back a
// failed start gets the rest but the last twentieth, which is left to fx:
// fx's App.Start returns at its deadline without waiting for the hook, and
// App.Run then exits the process, so a rollback must be over by then.
const (
	openShareNum, openShareDen     = 2, 3
	returnShareNum, returnShareDen = 19, 20
)

// errOpenBudget is the cause of a start whose opening took its whole share.
var errOpenBudget = fmt.Errorf("opening took its share of the start budget: %w", context.DeadlineExceeded)

// errStopWhileStarting is the cause of a start that a stop cut short.
var errStopWhileStarting = fmt.Errorf("stopped while starting: %w", ErrClosed)

// share returns num/den of d.
func share(d time.Duration, num, den int64) time.Duration {
	return d * time.Duration(num) / time.Duration(den)
}

// startRun is one start's hand-off with the workers it launched. A worker
// reports how its open went by appending to reports, and goes on without
// waiting: the start reads the reports in batches, woken only when it has
// something to act on (see report), not once per worker.
type startRun struct {
	ctx  context.Context // the open's context: ends with the start
	sem  chan struct{}   // StartConcurrency; nil if it is no limit
	wake chan struct{}   // buffered: the start has reports to act on

	// failed is set by a worker whose open failed, before it gives its
	// turn (StartConcurrency) to the next: that one, and those after it,
	// then never begin, even before the start has read the failure.
	failed atomic.Bool

	mu      sync.Mutex
	reports []openResult // capacity n: never reallocated, see take
	left    int          // reports still to come
	eager   bool         // the start rolls back: wake it for every report
	closed  bool         // the start takes no more reports
	taken   int          // reports the start has read; the start's alone
}

type openResult struct {
	id  int
	err error
}

// start opens the first workers' resources, in parallel, and starts
// serving. If any open fails, or the open's share of the budget runs out,
// it closes everything that opened, in reverse order, before returning.
func (p *Pool[R]) start(ctx context.Context) error {
	openCtx, cancelOpen := context.WithCancelCause(ctx)
	defer cancelOpen(nil)
	// A stop that comes while the pool starts cancels the open with
	// errStopWhileStarting: see shutdown.
	if !p.transitionIf(stateStarting, func() bool { p.cancelStart = cancelOpen; return true }, stateNew) {
		switch s := p.current(); s {
		case stateServing, stateFailed:
			return nil // started already
		default:
			return fmt.Errorf("workerpool: pool %q: start while %v: a pool starts once: %w", p.name, s, ErrClosed)
		}
	}
	defer close(p.startEnded)
	began := time.Now()
	n := p.cfg.workers
	if p.elastic != nil {
		n = p.cfg.minWorkers
	}
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		openCtx, cancel = context.WithDeadlineCause(openCtx, began.Add(share(dl.Sub(began), openShareNum, openShareDen)), errOpenBudget)
		defer cancel()
	}
	run := &startRun{
		ctx:     openCtx,
		wake:    make(chan struct{}, 1),
		reports: make([]openResult, 0, n),
		left:    n,
	}
	if p.cfg.startConcurrency < n {
		run.sem = make(chan struct{}, p.cfg.startConcurrency)
	}
	boot := (*worker[R]).openAtStart // made once: a closure of R's dictionary
	for _, w := range p.all()[:n] {
		w.slotted = true // no grower or Resize yet: no lock needed
		w.run = run
		p.launch(w, boot)
	}

	var (
		failures []error
		cut      []error // workers whose open the start's end cut short
		opened   = 0
		reported = 0
		cause    error // why the start gave up, if not a failed open
	)
	// consider takes a worker's report; an error caused by the start giving
	// up is not the worker's failure, but says what it was opening.
	consider := func(r openResult) {
		reported++
		switch {
		case r.err == nil:
			opened++
		case isNeverBegan(r.err):
		case context.Cause(openCtx) == nil || !errors.Is(r.err, context.Cause(openCtx)):
			failures = append(failures, &workerError{r.id, r.err})
			cancelOpen(r.err) // the others give up
		default:
			cut = append(cut, &workerError{r.id, fmt.Errorf("was opening: %w", r.err)})
		}
	}
	for reported < n && cause == nil && len(failures) == 0 {
		select {
		case <-run.wake:
			for _, r := range run.take(false, false) {
				consider(r)
			}
		case <-openCtx.Done():
			cause = context.Cause(openCtx)
		}
	}
	// Success only within the open's share: fx must see the hook return
	// before its deadline, or it gives up on a pool it will never stop.
	// The open's context is looked at again under the lock that a stop
	// cancels it under: a stop is either before the start serves, which
	// then rolls back, or after, and stops a pool that serves.
	if len(failures) == 0 && cause == nil && p.queueZeroReady(openCtx, n) &&
		p.transitionIf(stateServing, func() bool { return openCtx.Err() == nil }, stateStarting) {
		if e := p.elastic; e != nil {
			e.mu.Lock()
			e.live = n
			e.mu.Unlock()
			go p.grower() // a task that came meanwhile has woken it
		}
		p.record(PoolStarted{Pool: p.name, Workers: n, Took: time.Since(began)})
		return nil
	}
	if cause == nil && len(failures) == 0 {
		// Every worker opened, but past the open's share: a start that
		// returns nil so close to its deadline is one fx may give up on,
		// and never stop.
		cause = context.Cause(openCtx)
	}

	// Roll back, with a budget of its own: fx would roll back with ctx,
	// maybe expired, and give up at its deadline.
	cancelOpen(cause)
	p.transition(stateStopped, stateStarting)
	rb, cancel := p.rollbackContext(ctx, began)
	defer cancel()
	// Every worker that opened gets a pill carrying the rollback's context;
	// late reports are taken until the rollback's deadline. A worker that
	// reports later closes what it opened on its own.
	pill := task[R]{ctx: rb}
	p.q.End(pill, opened)
	take := func(last bool) {
		for _, r := range run.take(true, last) {
			consider(r)
			if r.err == nil {
				p.q.End(pill, 1)
			}
		}
	}
	take(false) // and from now on, every report wakes the start
	for reported < n && rb.Err() == nil {
		select {
		case <-run.wake:
			take(false)
		case <-rb.Done():
		}
	}
	take(true)
	var head error
	if len(failures) > 0 {
		head = fmt.Errorf("workerpool: pool %q: start: %w", p.name, errors.Join(failures...))
	} else {
		head = fmt.Errorf("workerpool: pool %q: start: %w", p.name, errors.Join(append([]error{cause, p.stuck(n)}, cut...)...))
	}
	errs := []error{head}
	if err := p.waitWorkers(rb, p.all()[:n]); err != nil {
		errs = append(errs, fmt.Errorf("roll back: %w", err))
		// The sweep below takes the pills still queued: the workers they
		// were for close alone, as after a stop that gave up.
		close(p.abandon)
		p.wakeWaiting()
	}
	p.finalSweep()
	close(p.stopped) // nothing left for a stop to do
	err := errors.Join(errs...)
	p.record(PoolStarted{Pool: p.name, Workers: n, Took: time.Since(began), Err: err})
	return err
}

// rollbackContext bounds a failed start's rollback: by the start's
// deadline, less fx's share, or by CloseTimeout if the start has none.
func (p *Pool[R]) rollbackContext(ctx context.Context, began time.Time) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.WithoutCancel(ctx), began.Add(share(dl.Sub(began), returnShareNum, returnShareDen)))
	}
	return context.WithTimeout(context.WithoutCancel(ctx), p.cfg.closeTimeout)
}

// stuck names the workers among the first n that are opening now, and
// what each is opening.
func (p *Pool[R]) stuck(n int) error {
	var errs []error
	for _, w := range p.all()[:n] {
		if ph := w.phase.Load(); ph == phaseOpening {
			if name := w.opening.Load(); name != nil {
				errs = append(errs, &workerError{w.id, fmt.Errorf("still opening %s", *name)})
			}
		}
	}
	return errors.Join(errs...)
}

// queueZeroReady waits, for a pool with QueueSize(0), until every worker
// waits in the queue, so that TryGo finds one right after the start.
func (p *Pool[R]) queueZeroReady(ctx context.Context, n int) bool {
	if p.cfg.queue != 0 || p.elastic != nil {
		return true
	}
	for p.q.Idle() < n {
		if ctx.Err() != nil {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// openAtStart is the boot of a worker launched by the start, w.run: it
// opens within the start's budget, tells the start, and serves only if the
// start took its report. w.run stays set while it opens, for a Goexit in a
// constructor: see goexited.
func (w *worker[R]) openAtStart() bool {
	run := w.run
	if !run.begin() {
		w.run = nil
		return run.report(w.id, &neverBegan{cmp.Or(context.Cause(run.ctx), errPeerFailed)})
	}
	err := w.open(run.ctx)
	w.run = nil
	if err != nil {
		run.failed.Store(true)
	}
	run.end()
	return run.report(w.id, err)
}

// begin waits for a turn to open (StartConcurrency), and reports false if
// the start gave up first, or an open failed.
func (run *startRun) begin() bool {
	if run.sem == nil {
		return run.ctx.Err() == nil
	}
	select {
	case run.sem <- struct{}{}:
		if run.failed.Load() || run.ctx.Err() != nil {
			<-run.sem
			return false
		}
		return true
	case <-run.ctx.Done():
		return false
	}
}

// errPeerFailed is why a worker never began opening when the start had
// not yet read the failure of another's open.
var errPeerFailed = errors.New("another worker's open failed")

// end gives the turn that begin took to the next worker.
func (run *startRun) end() {
	if run.sem != nil {
		<-run.sem
	}
}

// report tells the start how worker id's open went, and reports whether
// the worker is to serve: only if the start will read the report and the
// open succeeded. The start is woken by a failure, by the last report, and
// by every report once it rolls back; the rest wait for one of those.
func (run *startRun) report(id int, err error) bool {
	run.mu.Lock()
	if run.closed {
		run.mu.Unlock()
		return false // the loop closes whatever opened
	}
	// The start will read it: if it rolls back, it sends this worker a pill.
	run.reports = append(run.reports, openResult{id, err})
	run.left--
	wake := err != nil || run.left == 0 || run.eager
	run.mu.Unlock()
	if wake {
		select {
		case run.wake <- struct{}{}:
		default: // the start has yet to take the wake-up already there
		}
	}
	return err == nil
}

// take returns the reports the start has not read yet. Once a take is
// eager (the rollback's), every report wakes the start; after the last,
// reports are refused. Reports go into a slice made with room for every
// worker, so what take returns stays valid as workers append behind it.
func (run *startRun) take(eager, last bool) []openResult {
	run.mu.Lock()
	rs := run.reports[run.taken:]
	run.taken = len(run.reports)
	run.eager = run.eager || eager
	run.closed = last
	run.mu.Unlock()
	return rs
}

// neverBegan is the report of a worker whose open the start gave up on
// before it began (StartConcurrency).
type neverBegan struct{ cause error }

func (e *neverBegan) Error() string { return "never began opening: " + e.cause.Error() }
func (e *neverBegan) Unwrap() error { return e.cause }

// isNeverBegan reports whether err is a neverBegan. Apart from the start's
// loop, whose closure would otherwise allocate the target at every report.
func isNeverBegan(err error) bool {
	var never *neverBegan
	return errors.As(err, &never)
}
