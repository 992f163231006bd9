package workerpool

import (
	"fmt"

	"github.com/fxpool/fxpool/internal/safe"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// countRestart records an attempt to restart a worker and reports whether
// the worker may go on: not once the pool drops its tasks (it failed, or
// its stop gave up draining). Past MaxRestarts within the window, it fails
// the pool, naming the last cause.
func (p *Pool[R]) countRestart(cause error) bool {
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
			p.fail(fmt.Errorf("more than %d restarts within %v, the last after: %w", p.cfg.maxRestarts, p.cfg.restartWindow, cause))
		}
	}
	return !p.dropping.Load()
}

// fail stops the pool from serving: it refuses new tasks, reports queued
// ones as not run, cancels running ones, and asks fx to stop the app with
// exit code 1. The workers keep their resources until the app stops them.
// A pool that drains for a stop fails the same way, once, and stays in the
// stop: its workers stop retrying, and the tasks left are reported.
func (p *Pool[R]) fail(cause error) {
	if !p.transition(stateFailed, stateServing, stateStopping) && !p.failDraining() {
		return // failed, or stopped already
	}
	err := fmt.Errorf("workerpool: pool %q failed: %w", p.name, cause)
	p.beginDropping() // before the event: a task taken meanwhile does not run
	p.record(PoolFailed{Pool: p.name, Err: err})
	p.cancelRunning(ErrClosed)
	if p.sd != nil {
		if serr := p.sd.Shutdown(fx.ExitCode(1)); serr != nil {
			p.log.Error("asking fx to stop the app", zap.Error(serr))
		}
	}
}

// failDraining reports whether the pool drains for a stop, had not failed
// yet and still runs queued tasks, and marks it failed.
func (p *Pool[R]) failDraining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateDraining || p.drainFailed || p.dropping.Load() {
		return false
	}
	p.drainFailed = true
	return true
}

// handle gives the error of a task nobody waits for to the ErrorHandler,
// or logs it.
func (p *Pool[R]) handle(err error) {
	if f := p.cfg.onError; f != nil {
		p.guard("ErrorHandler", func() { f(err) })
		return
	}
	p.log.Error("task failed", zap.Error(err))
}

// guard calls a user's callback; a panic in it is logged, never a crash of
// the pool.
func (p *Pool[R]) guard(callback string, f func()) {
	if err := safe.Call(f); err != nil {
		p.log.Error(callback+" panicked", zap.Error(err))
	}
}

// guardAlone calls a user's callback on a goroutine of its own and waits
// for it: a panic is logged, and so is a runtime.Goexit, which ends only
// that goroutine. For the callbacks whose caller a Goexit would cost more
// than the callback: the Events hook, called by workers as they open and
// close their resources and by starts and stops, and OnDropped, called by
// a stop.
func (p *Pool[R]) guardAlone(callback string, f func()) {
	done := make(chan error, 1)
	go func() {
		err := errCallbackGoexit // unless f returns or panics
		defer func() { done <- err }()
		err = safe.Call(f)
	}()
	switch err := <-done; {
	case err == errCallbackGoexit:
		p.log.Error(callback+" called runtime.Goexit", zap.Error(err))
	case err != nil:
		p.log.Error(callback+" panicked", zap.Error(err))
	}
}

// errCallbackGoexit is what guardAlone logs of a callback that called
// runtime.Goexit.
var errCallbackGoexit = fmt.Errorf("the callback called runtime.Goexit: %w", ErrGoexit)

// guardErr calls a user's func that returns an error; a panic in it is
// that error.
func (p *Pool[R]) guardErr(callback string, f func() error) error {
	var err error
	if perr := safe.Call(func() { err = f() }); perr != nil {
		return fmt.Errorf("%s panicked: %w", callback, perr)
	}
	return err
}

// tell gives a task's outcome to whoever waits for it. A GoReport's report
// is the user's code: a panic in it is logged, never a crash.
func (p *Pool[R]) tell(t task[R], o Outcome, err error) {
	if f, ok := t.res.(reportFunc); ok {
		p.guard("a GoReport report", func() { f(o, err) })
		return
	}
	t.res.finish(o, err)
}
