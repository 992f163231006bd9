//go:build linux

package workerpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// rbThreads records, for each open of the first resource (a worker
// generation's, or an attempt at it), the thread it opened on and the
// thread its cleanup ran on.
type rbThreads struct {
	mu    sync.Mutex
	opens []rbOpen
}

type rbOpen struct {
	w              resources.Worker
	opened, closed int // thread ids; closed is 0 until the cleanup runs
}

type rbFirst struct{ w resources.Worker }

type rbSecond struct{}

type rbDeps struct {
	fx.In
	First  *rbFirst
	Second *rbSecond
}

var errRbOpen = errors.New("second resource refuses to open")

// option declares two resources: the first records its threads; the
// second, which needs the first, fails whenever fail says so.
func (l *rbThreads) option(fail func(resources.Worker) bool) workerpool.Option {
	return workerpool.Resources(
		resources.PerWorker(func(w resources.Worker) (*rbFirst, func(), error) {
			l.mu.Lock()
			i := len(l.opens)
			l.opens = append(l.opens, rbOpen{w: w, opened: syscall.Gettid()})
			l.mu.Unlock()
			return &rbFirst{w}, func() {
				l.mu.Lock()
				l.opens[i].closed = syscall.Gettid()
				l.mu.Unlock()
			}, nil
		}),
		resources.PerWorker(func(f *rbFirst) (*rbSecond, error) {
			if fail(f.w) {
				return nil, errRbOpen
			}
			return &rbSecond{}, nil
		}),
	)
}

func (l *rbThreads) check(t *testing.T, wantOpens int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.opens) < wantOpens {
		t.Fatalf("%d opens, want at least %d", len(l.opens), wantOpens)
	}
	for _, o := range l.opens {
		switch {
		case o.closed == 0:
			t.Errorf("worker %d gen %d: first resource never closed", o.w.ID, o.w.Generation)
		case o.closed != o.opened:
			t.Errorf("worker %d gen %d: first resource opened on thread %d, closed on %d (LockOSThread: one thread from open to close)", o.w.ID, o.w.Generation, o.opened, o.closed)
		}
	}
}

// With LockOSThread, the resources a failed open had opened are closed on
// the worker's thread, at a failed start as everywhere else: a cgo handle
// closed on another thread than its own is what LockOSThread exists to
// prevent.
func TestLockOSThreadFailedStartRollsBackOnItsThread(t *testing.T) {
	var l rbThreads
	app := fx.New(fx.NopLogger,
		workerpool.Provide[rbDeps]("rb", workerpool.Workers(3), workerpool.LockOSThread(),
			l.option(func(w resources.Worker) bool { return w.ID == 1 })),
		fx.Invoke(func(*workerpool.Pool[rbDeps]) {}),
	)
	if err := app.Start(t.Context()); !errors.Is(err, errRbOpen) {
		t.Fatalf("Start = %v, want %v", err, errRbOpen)
	}
	l.check(t, 1) // worker 1's first resource, at least: the others may never begin
}

// The same for a rebuild whose open fails half-way: the worker's thread
// closes what that open had opened.
func TestLockOSThreadFailedRebuildRollsBackOnItsThread(t *testing.T) {
	var (
		l      rbThreads
		failed atomic.Int32 // the first open of generation 1 fails; its retry does not
	)
	p, app := start[rbDeps](t, workerpool.Workers(1), workerpool.LockOSThread(),
		workerpool.MaxTasksPerWorker(1), workerpool.RestartBackoff(time.Millisecond, time.Millisecond),
		l.option(func(w resources.Worker) bool { return w.Generation == 1 && failed.Add(1) == 1 }))
	for range 3 {
		if err := p.Do(t.Context(), func(context.Context, rbDeps) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.check(t, 3) // generation 0, the failed attempt at 1, and 1
}
