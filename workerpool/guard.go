package workerpool

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/fx"
)

// StopGuard keeps a slow hook from starving the app's pools of their stop.
//
// fx stops hooks one after another, in reverse order, all within one
// budget, and once the budget is gone it skips every hook left: when a
// hook that stops before a pool — an HTTP server's graceful Shutdown —
// uses up the budget, fx never calls the pool's OnStop, its queued tasks
// are never reported and its resources (a batch to commit) never closed.
//
// Give StopGuard to fx.New after every other option: its OnStop hook is
// then the app's last appended and the first to run. It notes the stop's
// deadline, and every pool of the app (registered with the Registry of
// fxpool.Module, which StopGuard needs) whose OnStop has not begun by half
// of the stop budget begins its stop on its own then, with the rest of the
// budget, so that it is over before fx gives up. Pools stop in the order fx
// would stop them, the last built first, one after another: a pool whose
// constructor took another pool (a batcher whose cleanups flush into a
// writer pool) is stopped, its cleanups run, before that other pool. When
// fx does reach the pool's OnStop, that hook waits for the stop already
// under way. Without a deadline on the app's stop, StopGuard does nothing.
//
// What remains: StopGuard guards pools only. If the slow hook still takes
// the whole budget, fx skips every hook after it all the same, the
// app-scoped resources the pools flushed into included (a store that must
// sync on close): bound the slow hook itself, as examples/httpserver
// bounds its server's graceful Shutdown. A pool that stops on its own
// refuses the tasks of the hooks still stopping before it (they get
// ErrClosed), and nothing guards an app whose invokes append hooks after
// StopGuard's, nor an app stopped with a context that has already ended:
// fx then calls no OnStop at all, StopGuard's included.
func StopGuard() fx.Option {
	return fx.Invoke(func(lc fx.Lifecycle, reg *Registry) {
		lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
			if dl, ok := ctx.Deadline(); ok {
				reg.guard(dl)
			}
			return nil
		}})
	})
}

// guardStop is told by StopGuard that the app's stop must be over by deadline.
// If the pool's own stop has not begun by half of the time left, it begins
// then, bounded by deadline, on the timer's goroutine, once before has
// returned (it stops the pools that fx would stop before this one); the
// hook of the pool's OnStop, if fx reaches it, waits for it.
func (p *Pool[R]) guardStop(deadline time.Time, before func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateServing && p.state != stateFailed || p.guarded != nil {
		return
	}
	p.guarded = time.AfterFunc(share(time.Until(deadline), 1, 2), func() {
		before()
		p.stopGuarded(deadline)
	})
}

// stopGuarded stops a pool that StopGuard guards, bounded by deadline, or
// waits for its stop under way, and logs the error of a stop it began. A
// pool that StopGuard did not arm (it was not serving) is left alone.
func (p *Pool[R]) stopGuarded(deadline time.Time) {
	p.mu.Lock()
	armed := p.guarded != nil
	p.mu.Unlock()
	if !armed {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	began := p.stopNotBegun()
	if err := p.stop(ctx); err != nil && began {
		p.log.Error(fmt.Sprintf("pool stopped by StopGuard: %v", err))
	}
}
