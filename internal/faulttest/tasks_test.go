package faulttest

// The tasks a trial submits, and what each records: whether it ran, was
// reported to OnDropped, what its submitter, its report or the
// ErrorHandler was told.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
)

// errSubmitterGone is the cause with which a cancellable submitter's
// context ends.
var errSubmitterGone = errors.New("faulttest: the submitter's context ended")

// subKey is the key of the value a submitter's context carries: its index.
type subKey struct{}

// probeKey marks the context with which OnDropped calls a dropped task, so
// that the task records that it was reported instead of running.
type probeKey struct{}

// acceptance is what a submission call said.
type acceptance int

const (
	acceptUnknown acceptance = iota // Do, Group.Go: not told apart from the result
	accepted
	refusedTask
)

func (a acceptance) String() string { return enumName(a, "unknown", "accepted", "refused") }

func acceptedIf(ok bool) acceptance {
	if ok {
		return accepted
	}
	return refusedTask
}

type taskRec struct {
	spec     taskSpec
	accepted acceptance // written by its submitter
	result   error      // Do's, or Future.Wait's
	hasRes   bool
	gaveUp   bool // Do returned its context's error: the outcome is unknown
	val      int

	ran     atomic.Int32
	dropped atomic.Int32 // OnDropped saw it
	handled atomic.Int32 // the ErrorHandler got its error
	began   atomic.Int64 // tr.seq when it began to run

	mu         sync.Mutex
	reports    int // GoReport's report calls
	outcome    workerpool.Outcome
	outcomeErr error
	blockCause error // the cause a taskBlock saw
}

// report is the report func of a task submitted with GoReport.
func (rec *taskRec) report(o workerpool.Outcome, err error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reports++
	if rec.reports == 1 {
		rec.outcome, rec.outcomeErr = o, err
	}
}

type taskError struct {
	id     int
	broken bool
	cause  error
}

func (e *taskError) Error() string {
	return fmt.Sprintf("faulttest: task %d failed (broken=%v, cause=%v)", e.id, e.broken, e.cause)
}

func (e *taskError) Is(target error) bool { return e.broken && target == resources.ErrBroken }

type taskPanicValue struct{ id int }

// wantValue is the subKey value the task's context, and the context
// OnDropped gets for it, must carry: its submitter's, unless it was
// submitted without a context (TryGo) or with context.Background.
func (tr *trial) wantValue(s taskSpec) any {
	if s.via == viaTryGo || !tr.cfg.subs[s.sub].ctx.hasValues() {
		return nil
	}
	return s.sub
}

func taskFn[R any](tr *trial, rec *taskRec) func(context.Context, R) error {
	id := rec.spec.id
	want := tr.wantValue(rec.spec)
	return func(ctx context.Context, r R) error {
		if ctx.Value(probeKey{}) != nil {
			if rec.dropped.Add(1) > 1 {
				tr.violate("dropped-twice", "task %d reported as not run twice", id)
			}
			if got := ctx.Value(subKey{}); got != want {
				tr.violate("on-dropped-context", "task %d (%v): OnDropped's context carries %v, want %v", id, rec.spec.via, got, want)
			}
			return nil
		}
		rec.began.Store(tr.seq.Add(1))
		if rec.ran.Add(1) > 1 {
			tr.violate("ran-twice", "task %d ran twice", id)
		}
		if got := ctx.Value(subKey{}); got != want {
			tr.violate("task-context-values", "task %d (%v): its context carries %v, want %v", id, rec.spec.via, got, want)
		}
		w, rs := resOf(r)
		for _, x := range rs {
			if x.closes.Load() != 0 {
				tr.violate("use-after-close", "task %d got %v, already closed", id, x)
			}
			if x.openFailed {
				tr.violate("use-of-failed-open", "task %d got %v, whose open failed", id, x)
			}
			if x.worker != w.ID || x.gen != w.Generation {
				tr.violate("foreign-resource", "task %d on worker %d generation %d got %v", id, w.ID, w.Generation, x)
			}
			if x.inUse.Add(1) > 1 {
				tr.violate("shared-resource", "task %d uses %v while another task does", id, x)
			}
		}
		defer func() { // runs on a panic and on runtime.Goexit too
			for _, x := range rs {
				x.inUse.Add(-1)
			}
		}()
		switch rec.spec.kind {
		case taskErr:
			tr.count("task-error")
			return &taskError{id: id}
		case taskBroken:
			tr.count("task-broken")
			return fmt.Errorf("wrapped: %w", &taskError{id: id, broken: true})
		case taskPanic:
			tr.count("task-panic")
			panic(taskPanicValue{id})
		case taskGoexit:
			tr.count("task-goexit")
			runtime.Goexit()
		case taskBlock:
			tr.count("task-block")
			<-ctx.Done()
			cause := context.Cause(ctx)
			rec.mu.Lock()
			rec.blockCause = cause
			rec.mu.Unlock()
			return &taskError{id: id, cause: cause}
		case taskSlow:
			time.Sleep(time.Duration(id%5) * 50 * time.Microsecond)
		}
		return nil
	}
}

// onError is the pool's ErrorHandler.
func (tr *trial) onError(err error) {
	var te *taskError
	var pe *workerpool.PanicError
	switch {
	case errors.As(err, &te):
		tr.tasks[te.id].handled.Add(1)
	case errors.As(err, &pe):
		if v, ok := pe.Value.(taskPanicValue); ok {
			tr.tasks[v.id].handled.Add(1)
			return
		}
		tr.violate("unexpected-error", "ErrorHandler got %v", err)
	case errors.Is(err, workerpool.ErrGoexit):
		tr.goexitHandled.Add(1)
	case errors.Is(err, workerpool.ErrClosed):
		tr.notRunGo.Add(1)
	default:
		tr.violate("unexpected-error", "ErrorHandler got %v", err)
	}
}
