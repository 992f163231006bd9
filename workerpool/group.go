package workerpool

import (
	"context"
	"sync"
)

// A Group is a set of tasks run on a pool's workers, with errgroup's shape:
// submit tasks with [Group.Go], wait for all of them with [Group.Wait]. The
// first task to fail — an error, a panic, a Goexit, or a task that could
// not be submitted — cancels the context of the others, and Wait returns
// its error; the errors of the others are not joined. No goroutine is
// started per task: tasks queue on the pool, with its backpressure.
//
// A Group is made by [Pool.Group]; its methods are safe for concurrent
// use. A Group must not be reused after Wait returns.
type Group[R any] struct {
	p      *Pool[R]
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	once sync.Once
	err  error
}

// Group returns a new group of tasks on p, and the context of its tasks,
// derived from ctx: it is cancelled when a task of the group fails (its
// cause is then that first error), when Wait returns, or when ctx ends. A
// nil ctx fails the group at once with [ErrNilContext]. Each task's
// context also ends when the pool's stop says so.
func (p *Pool[R]) Group(ctx context.Context) (*Group[R], context.Context) {
	nilCtx := ctx == nil
	if nilCtx {
		ctx = context.Background()
	}
	gctx, cancel := context.WithCancelCause(ctx)
	g := &Group[R]{p: p, ctx: gctx, cancel: cancel}
	if nilCtx {
		g.finishOne(NotRun, ErrNilContext) // Wait reports it
	}
	return g, gctx
}

// Go submits a task to the group's pool. It blocks while the pool's queue
// is full, until there is room, the pool stops or the group's context
// ends; a task that cannot be submitted fails the group with that error.
func (g *Group[R]) Go(task func(context.Context, R) error) {
	g.wg.Add(1)
	var err error
	if task == nil {
		err = ErrNilTask
	} else {
		err = g.p.enqueue(g.ctx, taskOf(g.ctx, true, task, g))
	}
	if err != nil {
		g.finish(NotRun, err)
	}
}

// TryGo submits a task only if the pool takes it now, as [Pool.TryGo]
// does, and reports whether it did. A task it did not submit does not
// fail the group.
func (g *Group[R]) TryGo(task func(context.Context, R) error) bool {
	if task == nil || g.ctx.Err() != nil {
		return false
	}
	g.wg.Add(1) // before a worker can finish it
	if !g.p.tryEnqueue(taskOf(g.ctx, true, task, g)) {
		g.wg.Done()
		return false
	}
	return true
}

// finish is the outcome of each of the group's tasks.
func (g *Group[R]) finish(o Outcome, err error) {
	g.finishOne(o, err)
	g.wg.Done()
}

// finishOne records a failure: the first cancels the group.
func (g *Group[R]) finishOne(_ Outcome, err error) {
	if err != nil {
		g.once.Do(func() {
			g.err = err
			g.cancel(err)
		})
	}
}

// Wait blocks until every task submitted to the group has finished or been
// reported as not run, then returns the first error, or nil. A task that
// never ran counts as failed with what kept it from running: the cause of
// the group's context when that context ended first (its parent's, or the
// first error's), [ErrClosed] when the pool stopped.
func (g *Group[R]) Wait() error {
	g.wg.Wait()
	g.cancel(context.Canceled)
	return g.err
}
