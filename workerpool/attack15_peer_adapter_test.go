package workerpool_test

// The adapter of the attack15 peer tests: ports of the behavioural tests of
// pond v2, ants v2, conc's pool, tunny and errgroup, written against fxpool's
// public API. Every test builds a real fx app with workerpool.Provide, whose
// workers each own an *a15Res that counts its uses and its closes.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a15Guard is the hang guard of every wait: no timing is asserted below it.
const a15Guard = 20 * time.Second

// a15Res is a worker's own resource.
type a15Res struct {
	W      resources.Worker
	inUse  atomic.Int32
	closed atomic.Int32
	shared atomic.Int32 // times two tasks used it at once
}

// enter marks the resource in use by a task; leave unmarks it.
func (r *a15Res) enter() {
	if !r.inUse.CompareAndSwap(0, 1) {
		r.shared.Add(1)
	}
}
func (r *a15Res) leave() { r.inUse.Store(0) }

type a15Deps struct {
	fx.In
	Res *a15Res
	W   resources.Worker
}

type a15Env struct {
	t   *testing.T
	P   *workerpool.Pool[a15Deps]
	App *fx.App

	mu      sync.Mutex
	opened  []*a15Res
	handled []error // ErrorHandler
	dropped []context.Context

	stopOnce sync.Once
	stopErr  error
}

type a15CtxKey struct{}

// a15Build builds the app without starting it.
func a15Build(t *testing.T, opts ...workerpool.Option) *a15Env {
	t.Helper()
	e := &a15Env{t: t}
	// A pool has one ErrorHandler and one OnDropped: the recording ones
	// below step aside when the test gives its own.
	has := func(prefix string) bool {
		for _, o := range opts {
			if strings.HasPrefix(o.String(), prefix) {
				return true
			}
		}
		return false
	}
	all := []workerpool.Option{
		workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*a15Res, func(), error) {
			r := &a15Res{W: w}
			e.mu.Lock()
			e.opened = append(e.opened, r)
			e.mu.Unlock()
			return r, func() { r.closed.Add(1) }, nil
		})),
	}
	if !has("workerpool.ErrorHandler") {
		all = append(all, workerpool.ErrorHandler(func(err error) {
			e.mu.Lock()
			e.handled = append(e.handled, err)
			e.mu.Unlock()
		}))
	}
	if !has("workerpool.OnDropped") {
		all = append(all, workerpool.OnDropped(func(ctx context.Context, _ func(context.Context, a15Deps) error) {
			e.mu.Lock()
			e.dropped = append(e.dropped, ctx)
			e.mu.Unlock()
		}))
	}
	all = append(all, opts...)
	e.App = fx.New(
		fx.NopLogger,
		workerpool.Provide[a15Deps]("peer", all...),
		fx.Populate(&e.P),
	)
	if err := e.App.Err(); err != nil {
		t.Fatalf("fx.New: %v", err)
	}
	return e
}

// a15New builds and starts the app; the test's cleanup stops it.
func a15New(t *testing.T, opts ...workerpool.Option) *a15Env {
	t.Helper()
	e := a15Build(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), a15Guard)
	defer cancel()
	if err := e.App.Start(ctx); err != nil {
		t.Fatalf("app.Start: %v", err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

// Stop stops the app once, with a budget of 30 s.
func (e *a15Env) Stop() error {
	e.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.stopErr = e.App.Stop(ctx)
	})
	return e.stopErr
}

func (e *a15Env) Opened() []*a15Res {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*a15Res(nil), e.opened...)
}

func (e *a15Env) Handled() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.handled...)
}

func (e *a15Env) Dropped() []context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]context.Context(nil), e.dropped...)
}

// VerifyResources checks, after the stop, that every resource that opened
// closed exactly once and was never used by two tasks at once.
func (e *a15Env) VerifyResources() {
	e.t.Helper()
	for _, r := range e.Opened() {
		if c := r.closed.Load(); c != 1 {
			e.t.Errorf("resource of worker %+v closed %d times, want 1", r.W, c)
		}
		if s := r.shared.Load(); s != 0 {
			e.t.Errorf("resource of worker %+v used by two tasks at once %d times", r.W, s)
		}
	}
}

// a15Gate is a channel closed once, by the test or by its cleanup, so that a
// failing test never leaves a task blocked.
type a15Gate struct {
	ch   chan struct{}
	once sync.Once
}

func a15NewGate(t *testing.T) *a15Gate {
	g := &a15Gate{ch: make(chan struct{})}
	t.Cleanup(g.Open)
	return g
}
func (g *a15Gate) Open()              { g.once.Do(func() { close(g.ch) }) }
func (g *a15Gate) C() <-chan struct{} { return g.ch }
func (g *a15Gate) Wait(ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// a15Recv waits for a value on ch, or fails the test after the guard.
func a15Recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(a15Guard):
		t.Fatalf("hang: %s not within %v", what, a15Guard)
		var zero T
		return zero
	}
}

// a15Eventually polls cond until it holds, or fails the test after the guard.
func a15Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(a15Guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("hang: %s not within %v", what, a15Guard)
		}
		time.Sleep(time.Millisecond)
	}
}

// a15StillBlocked reports whether ch has yielded nothing after a short
// while: used only to check that something is blocked, which holds whatever
// the scheduler does when the library is right.
func a15StillBlocked[T any](ch <-chan T) bool {
	select {
	case <-ch:
		return false
	case <-time.After(50 * time.Millisecond):
		return true
	}
}

// a15Go runs f in a goroutine and returns a channel of its error.
func a15Go(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func a15Noop(context.Context, a15Deps) error { return nil }

var errA15 = errors.New("attack15: sample error")
var errA15b = errors.New("attack15: second error")
