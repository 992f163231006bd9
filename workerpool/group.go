package workerpool

import (
	"context"
	"sync"
	"sync/atomic"
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

	// The tasks that Wait waits for, in one word (see groupQueued): those
	// submitted that no worker has begun or reported yet, those begun and
	// not finished, and whether Wait gave up on the queued ones.
	state atomic.Uint64
	idle  chan struct{} // a token when state may be one that Wait waits for

	once sync.Once
	err  error
}

// The fields of a Group's state.
const (
	groupRunning = 1       // one begun task (the low 32 bits)
	groupQueued  = 1 << 32 // one queued task (bits 32 to 62)
	groupGaveUp  = 1 << 63 // Wait waits no more for the queued tasks
)

// waited reports whether Wait is over at state s: no task begun and not
// finished, and no task queued or Wait gave up on those.
func waited(s uint64) bool {
	return s&(groupQueued-1) == 0 && (s&groupGaveUp != 0 || s&^groupGaveUp < groupQueued)
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
	g := &Group[R]{p: p, ctx: gctx, cancel: cancel, idle: make(chan struct{}, 1)}
	if nilCtx {
		g.finishOne(NotRun, ErrNilContext) // Wait reports it
	}
	return g, gctx
}

// Go submits a task to the group's pool. It blocks while the pool's queue
// is full, until there is room, the pool stops or the group's context
// ends; a task that cannot be submitted fails the group with that error.
func (g *Group[R]) Go(task func(context.Context, R) error) {
	g.state.Add(groupQueued)
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
	g.state.Add(groupQueued) // before a worker can finish it
	if !g.p.tryEnqueue(taskOf(g.ctx, true, task, g)) {
		g.settled(groupQueued)
		return false
	}
	return true
}

// begin is asked by the worker that took one of the group's tasks, once
// it has found the task's context alive: the task runs only if Wait has
// not given up on it (which it does once that context ends). Once Wait gives up, every task that began before is waited for,
// and none begins after: no task of the group runs behind Wait's back.
func (g *Group[R]) begin() bool {
	for {
		s := g.state.Load()
		if s&groupGaveUp != 0 {
			return false
		}
		if g.state.CompareAndSwap(s, s-groupQueued+groupRunning) {
			return true
		}
	}
}

// finish is the outcome of each of the group's tasks: a task that never
// ran never began (see begin).
func (g *Group[R]) finish(o Outcome, err error) {
	g.finishOne(o, err)
	if o == NotRun {
		g.settled(groupQueued)
	} else {
		g.settled(groupRunning)
	}
}

// settled takes one queued or begun task off the state, and wakes Wait if
// it may be over.
func (g *Group[R]) settled(one uint64) {
	if waited(g.state.Add(-one)) {
		select {
		case g.idle <- struct{}{}:
		default: // a token is there already
		}
	}
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
//
// Once the group's context has ended, Wait waits only for the tasks that
// a worker has begun: those still queued never run (the worker that takes
// one reports it as not run), and Wait does not wait for a worker to take
// them, which may be the very worker that waits, in a task of its own pool.
func (g *Group[R]) Wait() error {
	done := g.ctx.Done()
	for !waited(g.state.Load()) {
		select {
		case <-g.idle:
		case <-done:
			if g.state.Or(groupGaveUp)>>32&(groupGaveUp>>32-1) != 0 {
				// Tasks still queued will not run: they count as failed
				// with the cause of the context that ended first.
				g.finishOne(NotRun, context.Cause(g.ctx))
			}
			done = nil
		}
	}
	g.cancel(context.Canceled)
	return g.err
}
