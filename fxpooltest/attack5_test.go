package fxpooltest_test

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type (
	F5Plain  struct{}
	F5Closer struct{ n *atomic.Int32 }
	F5Ctx    struct{ got *atomic.Value }
	F5Dep    struct{}
)

func (c *F5Closer) Close() error {
	if c == nil {
		panic("Close on a nil *F5Closer: PerWorker would not have called it")
	}
	c.n.Add(1)
	return nil
}

func (c F5Ctx) Close(ctx context.Context) error { c.got.Store(ctx); return nil }

type f5key struct{}

var (
	f5ctxT     = reflect.TypeFor[context.Context]()
	f5cleanupT = reflect.TypeFor[func(context.Context) error]()
	f5errT     = reflect.TypeFor[error]()
)

// call invokes an injected constructor with zero/placeholder arguments.
func f5call(t *testing.T, ctor any, ctx context.Context) (any, func(context.Context) error, error) {
	t.Helper()
	v := reflect.ValueOf(ctor)
	ft := v.Type()
	if ft.NumIn() < 1 || ft.In(0) != f5ctxT {
		t.Fatalf("injected %v does not take a leading context.Context", ft)
	}
	if ft.NumOut() != 3 || ft.Out(1) != f5cleanupT || ft.Out(2) != f5errT {
		t.Fatalf("injected %v does not return (T, func(context.Context) error, error)", ft)
	}
	args := []reflect.Value{reflect.ValueOf(ctx)}
	for i := 1; i < ft.NumIn(); i++ {
		args = append(args, reflect.New(ft.In(i)).Elem())
	}
	out := v.Call(args)
	var cl func(context.Context) error
	if !out[1].IsNil() {
		cl = out[1].Interface().(func(context.Context) error)
	}
	var err error
	if !out[2].IsNil() {
		err = out[2].Interface().(error)
	}
	return out[0].Interface(), cl, err
}

// "It accepts every form that PerWorker does and returns a constructor of
// the same resource type, which always takes a leading context.Context and
// returns (T, func(context.Context) error, error). Its cleanup runs the
// original's cleanup, or the Close method that PerWorker would have called;
// a resource with neither gets a cleanup only if a fault is set on its
// close."
func TestAttack5_InjectShapesAndCleanups(t *testing.T) {
	ctx := context.WithValue(context.Background(), f5key{}, "v")
	var n atomic.Int32
	var got atomic.Value
	type in struct {
		fx.In
		D *F5Dep `optional:"true"`
	}
	// plain T, no Close, no close fault: no cleanup
	_, cl, err := f5call(t, fxpooltest.Inject(func() *F5Plain { return &F5Plain{} }), ctx)
	if err != nil || cl != nil {
		t.Errorf("plain: cleanup %v err %v; want no cleanup", cl != nil, err)
	}
	// plain T with a fault on its close: a cleanup
	_, cl, _ = f5call(t, fxpooltest.Inject(func() *F5Plain { return &F5Plain{} }, fxpooltest.OnClose(1, fxpooltest.Fail)), ctx)
	if cl == nil {
		t.Fatal("plain with OnClose: no cleanup")
	}
	if err := cl(ctx); !errors.Is(err, fxpooltest.ErrInjected) {
		t.Errorf("injected close = %v", err)
	}
	// Close() error, fx.In param and Worker
	v, cl, _ := f5call(t, fxpooltest.Inject(func(p in, w resources.Worker) (*F5Closer, error) { return &F5Closer{n: &n}, nil }), ctx)
	if _, ok := v.(*F5Closer); !ok || cl == nil {
		t.Fatalf("closer: %T, cleanup %v", v, cl != nil)
	}
	_ = cl(ctx)
	if n.Load() != 1 {
		t.Errorf("Close called %d times", n.Load())
	}
	// Close(ctx) error on a value type: gets the cleanup's context
	_, cl, _ = f5call(t, fxpooltest.Inject(func() F5Ctx { return F5Ctx{got: &got} }), ctx)
	if cl == nil {
		t.Fatal("ctx closer: no cleanup")
	}
	_ = cl(ctx)
	if c, _ := got.Load().(context.Context); c == nil || c.Value(f5key{}) != "v" {
		t.Errorf("Close(ctx) did not get the cleanup's context")
	}
	// explicit cleanup of every kind, and Close not called with it
	n.Store(0)
	var ran atomic.Int32
	forms := []any{
		func() (*F5Closer, func(), error) { return &F5Closer{n: &n}, func() { ran.Add(1) }, nil },
		func() (*F5Closer, func() error, error) {
			return &F5Closer{n: &n}, func() error { ran.Add(1); return nil }, nil
		},
		func(context.Context) (*F5Closer, func(context.Context) error, error) {
			return &F5Closer{n: &n}, func(context.Context) error { ran.Add(1); return nil }, nil
		},
	}
	for _, f := range forms {
		_, cl, _ := f5call(t, fxpooltest.Inject(f), ctx)
		if cl == nil {
			t.Fatalf("%T: no cleanup", f)
		}
		_ = cl(ctx)
	}
	if ran.Load() != 3 || n.Load() != 0 {
		t.Errorf("explicit cleanups ran %d (want 3), Close %d (want 0)", ran.Load(), n.Load())
	}
}

// "Its cleanup runs ... the Close method that PerWorker would have called":
// PerWorker calls no Close on a nil value ("nil values excepted"), so the
// injected cleanup must not either.
func TestAttack5_InjectNilPointerGetsNoClose(t *testing.T) {
	_, cl, err := f5call(t, fxpooltest.Inject(func() (*F5Closer, error) { return nil, nil }), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cl == nil {
		return
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("the injected cleanup called Close on a nil value: %v", r)
			}
		}()
		_ = cl(context.Background())
	}()
}

// The same for a nil interface value (io.Closer): neither the wrapper nor its
// cleanup may panic. In a child process, since a panic may be on a pool's
// goroutine.
func TestAttack5_InjectNilInterface(t *testing.T) {
	_, cl, err := f5callSafe(fxpooltest.Inject(func() (io.Closer, error) { return nil, nil }))
	if err != nil {
		t.Fatalf("calling the injected constructor: %v", err)
	}
	if cl != nil {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("the injected cleanup of a nil io.Closer panicked: %v", r)
				}
			}()
			_ = cl(context.Background())
		}()
	}
}

func f5callSafe(ctor any) (v any, cl func(context.Context) error, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("panic: " + strings.TrimSpace(strings.SplitN(strings.TrimSpace(toString(r)), "\n", 2)[0]))
		}
	}()
	out := reflect.ValueOf(ctor).Call([]reflect.Value{reflect.ValueOf(context.Background())})
	if !out[1].IsNil() {
		cl = out[1].Interface().(func(context.Context) error)
	}
	if !out[2].IsNil() {
		err = out[2].Interface().(error)
	}
	return out[0].Interface(), cl, err
}

func toString(r any) string {
	if e, ok := r.(error); ok {
		return e.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return reflect.ValueOf(r).String()
}

// "When two faults name the same call, the first wins"; counting "from 1,
// across all workers and generations"; "Every fault wraps ErrInjected"; the
// user's constructor "is not called" for an open fault.
func TestAttack5_InjectFirstFaultWinsAndCounts(t *testing.T) {
	var calls atomic.Int32
	ctor := fxpooltest.Inject(func() *F5Plain { calls.Add(1); return &F5Plain{} },
		fxpooltest.OnOpen(2, fxpooltest.Fail),
		fxpooltest.OnOpen(2, fxpooltest.Panic),
		fxpooltest.OnOpen(4, fxpooltest.Panic),
	)
	results := make([]string, 5)
	for i := range 5 {
		_, _, err := f5callSafe(ctor)
		switch {
		case err == nil:
			results[i] = "ok"
		case strings.HasPrefix(err.Error(), "panic"):
			results[i] = "panic"
		case errors.Is(err, fxpooltest.ErrInjected):
			results[i] = "fail"
		default:
			results[i] = err.Error()
		}
	}
	want := []string{"ok", "fail", "ok", "panic", "ok"}
	for i := range want {
		if results[i] != want[i] {
			t.Fatalf("results %q, want %q", results, want)
		}
	}
	if calls.Load() != 3 {
		t.Errorf("user constructor called %d times, want 3", calls.Load())
	}
}

// OnOpen Hang: "blocks until the context of the open ... ends, then returns
// an error wrapping ErrInjected and the context's cause."
func TestAttack5_InjectHangReturnsCause(t *testing.T) {
	ctor := fxpooltest.Inject(func() *F5Plain { return &F5Plain{} }, fxpooltest.OnOpen(1, fxpooltest.Hang))
	cause := errors.New("my cause")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		out := reflect.ValueOf(ctor).Call([]reflect.Value{reflect.ValueOf(ctx)})
		err, _ := out[2].Interface().(error)
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("Hang returned before its context ended")
	case <-time.After(20 * time.Millisecond):
	}
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, fxpooltest.ErrInjected) || !errors.Is(err, cause) {
			t.Errorf("err = %v; want ErrInjected and the cause", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Hang did not return after its context ended")
	}
}

// OnClose(n, Fail|Panic) happens after the real cleanup, "which still runs":
// in a real pool, the start's rollback and the stop both see ErrInjected and
// the resource is closed for real exactly once per open.
func TestAttack5_InjectOnCloseInAPool(t *testing.T) {
	var n atomic.Int32
	var opens atomic.Int32
	for _, k := range []fxpooltest.Kind{fxpooltest.Fail, fxpooltest.Panic} {
		n.Store(0)
		opens.Store(0)
		rec := fxpooltest.NewRecorder()
		app := newApp(t,
			workerpool.Provide[*F5Closer]("inj",
				workerpool.Workers(3),
				rec.Option(),
				workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
					func() *F5Closer { opens.Add(1); return &F5Closer{n: &n} },
					fxpooltest.OnClose(2, k),
				), resources.Name("c"))),
			),
			fx.Invoke(func(*workerpool.Pool[*F5Closer]) {}),
		)
		app.RequireStart()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := app.Stop(ctx)
		cancel()
		app.VerifyNoLeaks()
		if !errors.Is(err, fxpooltest.ErrInjected) {
			t.Errorf("%v: stop = %v, want ErrInjected", k, err)
		}
		if !strings.Contains(err.Error(), "inj") || !strings.Contains(err.Error(), "c") {
			t.Errorf("%v: stop error does not name pool and resource: %v", k, err)
		}
		if n.Load() != 3 || opens.Load() != 3 {
			t.Errorf("%v: opened %d, really closed %d", k, opens.Load(), n.Load())
		}
		rec.Verify(t)
	}
}

// Clock: "Add moves the clock forward by d and calls, in order, every
// function that has come due, on the caller's goroutine, before it
// returns"; Timer.Stop "reports whether it did so".
func TestAttack5_ClockOrderAndStop(t *testing.T) {
	c := fxpooltest.NewClock()
	t0 := c.Now()
	var order []int
	c.AfterFunc(3*time.Second, func() { order = append(order, 3) })
	c.AfterFunc(1*time.Second, func() { order = append(order, 1) })
	t2 := c.AfterFunc(2*time.Second, func() { order = append(order, 2) })
	c.AfterFunc(5*time.Second, func() { order = append(order, 5) })
	if !t2.Stop() {
		t.Error("Stop of a pending timer = false")
	}
	if t2.Stop() {
		t.Error("second Stop = true")
	}
	c.Add(4 * time.Second)
	if len(order) != 2 || order[0] != 1 || order[1] != 3 {
		t.Errorf("after Add(4s) order = %v, want [1 3]", order)
	}
	if got := c.Now().Sub(t0); got != 4*time.Second {
		t.Errorf("Now moved %v", got)
	}
	c.Add(time.Second)
	if len(order) != 3 || order[2] != 5 {
		t.Errorf("order = %v", order)
	}
	// a fired timer's Stop reports false
	fired := c.AfterFunc(time.Millisecond, func() {})
	c.Add(time.Millisecond)
	if fired.Stop() {
		t.Error("Stop of a fired timer = true")
	}
	// WaitTimers counts only pending ones
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.WaitTimers(ctx, 1); err == nil {
		t.Error("WaitTimers(1) with no pending timer returned nil")
	}
	c.AfterFunc(time.Hour, func() {})
	if err := c.WaitTimers(context.Background(), 1); err != nil {
		t.Error(err)
	}
}

// A function run by Add that uses the clock (Now, AfterFunc, Stop of
// another timer, WaitTimers with a satisfied count) must not deadlock:
// "It is safe for concurrent use" and f runs on Add's goroutine.
func TestAttack5_ClockCallbackUsesTheClock(t *testing.T) {
	c := fxpooltest.NewClock()
	var other workerpool.Timer
	var otherRan atomic.Bool
	other = c.AfterFunc(2*time.Second, func() { otherRan.Store(true) })
	done := make(chan struct{})
	c.AfterFunc(time.Second, func() {
		_ = c.Now()
		other.Stop()
		c.AfterFunc(time.Hour, func() {})
		_ = c.WaitTimers(context.Background(), 1)
	})
	go func() { defer close(done); c.Add(3 * time.Second) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Add deadlocked on a callback that uses the clock")
	}
	if otherRan.Load() {
		t.Error("a timer stopped by an earlier callback of the same Add still ran")
	}
}

// "A Clock ... is safe for concurrent use": concurrent Adds run each due
// function exactly once.
func TestAttack5_ClockConcurrentAddsFireOnce(t *testing.T) {
	c := fxpooltest.NewClock()
	var counts [100]atomic.Int32
	for i := range 100 {
		c.AfterFunc(time.Duration(i+1)*time.Millisecond, func() { counts[i].Add(1) })
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				c.Add(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for i := range counts {
		if counts[i].Load() != 1 {
			t.Fatalf("timer %d fired %d times", i, counts[i].Load())
		}
	}
}

// RequireStart: "If the start fails ... it reports the error and any
// goroutine left over, and fails the test at once."
func TestAttack5_RequireStartFailsNow(t *testing.T) {
	var ft fakeT
	failed := failsNow(func() {
		app := fxpooltest.New(&ft,
			workerpool.Provide[*F5Plain]("rs", workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(fxpooltest.Inject(func() *F5Plain { return &F5Plain{} },
					fxpooltest.OnOpen(1, fxpooltest.Fail))))),
			fx.Invoke(func(*workerpool.Pool[*F5Plain]) {}))
		app.RequireStart()
	})
	if !failed {
		t.Fatal("RequireStart of a failing app did not FailNow")
	}
	if errs := ft.errors(); len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "injected") {
		t.Errorf("reported %q", errs)
	}
}
