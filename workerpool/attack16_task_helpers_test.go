package workerpool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a16tGuard is the hang guard of every wait in these tests: never a timing
// assertion, only a bound on a wait that must end.
const a16tGuard = 30 * time.Second

type a16tP = workerpool.Pool[resources.Worker]

// a16tStart builds and starts an app with one pool named "a16t" of task
// parameter resources.Worker, and stops the app at the end of the test.
func a16tStart(t *testing.T, opts ...workerpool.Option) (*a16tP, *fx.App) {
	t.Helper()
	var p *a16tP
	app := fx.New(
		fx.NopLogger,
		workerpool.Provide[resources.Worker]("a16t", opts...),
		fx.Populate(&p),
	)
	if err := app.Err(); err != nil {
		t.Fatalf("fx.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
		defer cancel()
		_ = app.Stop(ctx)
	})
	return p, app
}

// a16tStop stops the pool on demand with a generous budget.
func a16tStop(t *testing.T, p *a16tP, policy workerpool.StopPolicy) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	return p.Stop(ctx, policy)
}

// a16tRecv waits for ch with the hang guard.
func a16tRecv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(a16tGuard):
		t.Fatalf("hang guard: %s", what)
		var zero T
		return zero
	}
}

// a16tEventually polls cond (no timing assertion: only a hang guard).
func a16tEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(a16tGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("hang guard: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// a16tBlocker is a task that signals it started and waits for release.
type a16tBlocker struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func a16tNewBlocker() *a16tBlocker {
	return &a16tBlocker{started: make(chan struct{}, 64), release: make(chan struct{})}
}

func (b *a16tBlocker) task(ctx context.Context, _ resources.Worker) error {
	b.started <- struct{}{}
	<-b.release
	return nil
}

func (b *a16tBlocker) open() { b.once.Do(func() { close(b.release) }) }

// a16tOccupy blocks n workers with Go tasks and waits until they all run.
func a16tOccupy(t *testing.T, p *a16tP, n int) *a16tBlocker {
	t.Helper()
	b := a16tNewBlocker()
	for range n {
		if err := p.Go(context.Background(), b.task); err != nil {
			t.Fatalf("occupy: Go: %v", err)
		}
	}
	for range n {
		a16tRecv(t, b.started, "occupying task to start")
	}
	t.Cleanup(b.open)
	return b
}

// a16tErrs records the ErrorHandler's errors.
type a16tErrs struct {
	mu   sync.Mutex
	errs []error
}

func (e *a16tErrs) handle(err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
}

func (e *a16tErrs) count(target error) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, err := range e.errs {
		if target == nil || errors.Is(err, target) {
			n++
		}
	}
	return n
}

func (e *a16tErrs) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

type a16tKey struct{}

// a16tDropped records OnDropped's calls by the value of a16tKey.
type a16tDropped struct {
	mu  sync.Mutex
	ids map[any]int
	n   atomic.Int64
}

func (d *a16tDropped) option() workerpool.Option {
	d.ids = map[any]int{}
	return workerpool.OnDropped[resources.Worker](func(ctx context.Context, _ func(context.Context, resources.Worker) error) {
		d.mu.Lock()
		d.ids[ctx.Value(a16tKey{})]++
		d.mu.Unlock()
		d.n.Add(1)
	})
}

func (d *a16tDropped) get(id any) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ids[id]
}

// a16tBarrier makes sure every task queued on a one-worker pool before it
// has been taken: it returns once a task after them has run.
func a16tBarrier(t *testing.T, p *a16tP) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), a16tGuard)
	defer cancel()
	if err := p.Do(ctx, func(context.Context, resources.Worker) error { return nil }); err != nil {
		t.Fatalf("barrier Do: %v", err)
	}
}
