package fxpooltest_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// Resources of every shape a constructor may return; live counts those
// open.
type (
	plain     struct{}
	closer    struct{ live *atomic.Int64 }
	ctxCloser struct{ live *atomic.Int64 }
	explicit  struct{}
	stopFunc  func()
)

func (c *closer) Close() error                   { c.live.Add(-1); return nil }
func (c *ctxCloser) Close(context.Context) error { c.live.Add(-1); return nil }

// form runs a one-worker pool of T made by ctor(live), wrapped by Inject
// with faults, and returns its events and the stop's error.
func form[T any](ctor func(live *atomic.Int64) any) func(*testing.T, *atomic.Int64, ...fxpooltest.Fault) ([]workerpool.Event, error) {
	return func(t *testing.T, live *atomic.Int64, faults ...fxpooltest.Fault) ([]workerpool.Event, error) {
		rec := fxpooltest.NewRecorder()
		var pool *workerpool.Pool[T]
		app := newApp(t,
			workerpool.Provide[T]("forms",
				workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(fxpooltest.Inject(ctor(live), faults...))),
				rec.Option(),
			),
			fx.Populate(&pool),
		).RequireStart()
		if err := pool.Do(t.Context(), func(context.Context, T) error { return nil }); err != nil {
			t.Errorf("Do = %v", err)
		}
		err := app.Stop(t.Context())
		app.VerifyNoLeaks()
		return rec.Events(), err
	}
}

func TestInjectKeepsEveryConstructorForm(t *testing.T) {
	type dbIn struct {
		fx.In
		DB *DB `optional:"true"`
	}
	tests := []struct {
		name       string
		run        func(*testing.T, *atomic.Int64, ...fxpooltest.Fault) ([]workerpool.Event, error)
		wantCloses int // without faults
	}{
		{"T", form[*plain](func(*atomic.Int64) any {
			return func() *plain { return &plain{} }
		}), 0},
		{"TWithCloseMethod", form[*closer](func(live *atomic.Int64) any {
			return func() *closer { live.Add(1); return &closer{live} }
		}), 1},
		{"ContextTErrorWithCloseContextMethod", form[*ctxCloser](func(live *atomic.Int64) any {
			return func(context.Context) (*ctxCloser, error) { live.Add(1); return &ctxCloser{live}, nil }
		}), 1},
		{"TCleanupError", form[*explicit](func(live *atomic.Int64) any {
			return func() (*explicit, func(), error) { live.Add(1); return &explicit{}, func() { live.Add(-1) }, nil }
		}), 1},
		{"TErrorCleanupError", form[*explicit](func(live *atomic.Int64) any {
			return func() (*explicit, func() error, error) {
				live.Add(1)
				return &explicit{}, func() error { live.Add(-1); return nil }, nil
			}
		}), 1},
		{"ContextTContextCleanupError", form[*explicit](func(live *atomic.Int64) any {
			return func(context.Context) (*explicit, func(context.Context) error, error) {
				live.Add(1)
				return &explicit{}, func(context.Context) error { live.Add(-1); return nil }, nil
			}
		}), 1},
		{"NamedCleanupType", form[*explicit](func(live *atomic.Int64) any {
			return func() (*explicit, stopFunc, error) { live.Add(1); return &explicit{}, func() { live.Add(-1) }, nil }
		}), 1},
		{"NilCleanup", form[*explicit](func(*atomic.Int64) any {
			return func() (*explicit, func(), error) { return &explicit{}, nil, nil }
		}), 0},
		{"FxInParamAndWorker", form[*closer](func(live *atomic.Int64) any {
			return func(in dbIn, w resources.Worker) *closer { live.Add(1); return &closer{live} }
		}), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var live atomic.Int64
			events, err := tt.run(t, &live)
			if err != nil {
				t.Errorf("stop without faults = %v", err)
			}
			if got := count[workerpool.ResourceClosed](events); got != tt.wantCloses {
				t.Errorf("without faults: %d closes, want %d", got, tt.wantCloses)
			}
			if n := live.Load(); n != 0 {
				t.Errorf("without faults: %d left open", n)
			}

			// A fault on the close gives a cleanup even to a resource that
			// had none, and the real cleanup still runs.
			events, err = tt.run(t, &live, fxpooltest.OnClose(1, fxpooltest.Fail))
			if !errors.Is(err, fxpooltest.ErrInjected) {
				t.Errorf("stop with a close fault = %v, want ErrInjected", err)
			}
			if got := count[workerpool.ResourceClosed](events); got != 1 {
				t.Errorf("with a close fault: %d closes, want 1", got)
			}
			if n := live.Load(); n != 0 {
				t.Errorf("with a close fault: %d left open", n)
			}
		})
	}
}

func count[E workerpool.Event](events []workerpool.Event) int {
	n := 0
	for _, e := range events {
		if _, ok := e.(E); ok {
			n++
		}
	}
	return n
}

func TestInjectCountsOpensAcrossWorkers(t *testing.T) {
	var opens atomic.Int64
	rec := fxpooltest.NewRecorder()
	var pool *workerpool.Pool[*explicit]
	app := newApp(t,
		workerpool.Provide[*explicit]("count",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(fxpooltest.Inject(
				func() *explicit { opens.Add(1); return &explicit{} },
				fxpooltest.OnOpen(3, fxpooltest.Fail), // the first rebuild
			))),
			workerpool.RestartBackoff(1, 1),
			rec.Option(),
		),
		fx.Populate(&pool),
	).RequireStart()
	err := pool.Do(t.Context(), func(context.Context, *explicit) error { return resources.ErrBroken })
	if !errors.Is(err, resources.ErrBroken) {
		t.Fatalf("Do = %v", err)
	}
	// The rebuild fails once, then succeeds: wait for the third open.
	ctx := waitCtx(t)
	for opens.Load() < 3 {
		select {
		case <-ctx.Done():
			t.Fatal("the worker never reopened")
		case <-time.After(time.Millisecond):
		}
	}
	app.RequireStop()
	rec.NoCleanup("*fxpooltest_test.explicit")
	rec.Verify(t)
	if n := opens.Load(); n != 3 { // 2 at start, the failed 3rd never called it, then the 4th
		t.Errorf("the constructor ran %d times, want 3", n)
	}
	failed := 0
	for _, e := range rec.Events() {
		if e, ok := e.(workerpool.ResourceOpened); ok && e.Err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d failed opens, want 1", failed)
	}
}

func TestInjectReturnsWhatPerWorkerRejects(t *testing.T) {
	tests := []struct {
		name string
		give any
	}{
		{"Nil", nil},
		{"NotAFunc", 42},
		{"NilFunc", (func() *plain)(nil)},
		{"Variadic", func(...int) *plain { return nil }},
		{"NoResult", func() {}},
		{"ErrorFirst", func() (error, error) { return nil, nil }},
		{"FourResults", func() (*plain, func(), error, error) { return nil, nil, nil, nil }},
		{"SecondResultNotError", func() (*plain, int) { return nil, 0 }},
		{"SecondResultNotCleanup", func() (*plain, int, error) { return nil, 0, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fxpooltest.Inject(tt.give, fxpooltest.OnOpen(1, fxpooltest.Fail))
			if !same(got, tt.give) {
				t.Errorf("Inject(%T) changed a constructor that PerWorker rejects", tt.give)
			}
		})
	}
}

func TestFaultConstructorsPanicOnMisuse(t *testing.T) {
	tests := []struct {
		name string
		give func() fxpooltest.Fault
	}{
		{"OnOpenZero", func() fxpooltest.Fault { return fxpooltest.OnOpen(0, fxpooltest.Fail) }},
		{"OnCloseNegative", func() fxpooltest.Fault { return fxpooltest.OnClose(-1, fxpooltest.Hang) }},
		{"UnknownKind", func() fxpooltest.Fault { return fxpooltest.OnOpen(1, fxpooltest.Kind(9)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			tt.give()
		})
	}
}

func TestFaultString(t *testing.T) {
	tests := []struct {
		give fxpooltest.Fault
		want string
	}{
		{fxpooltest.OnOpen(2, fxpooltest.Fail), "fxpooltest.OnOpen(2, fxpooltest.Fail)"},
		{fxpooltest.OnClose(1, fxpooltest.Panic), "fxpooltest.OnClose(1, fxpooltest.Panic)"},
		{fxpooltest.OnClose(3, fxpooltest.Hang), "fxpooltest.OnClose(3, fxpooltest.Hang)"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// same reports whether a and b are the same value, or the same func.
func same(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Func && vb.Kind() == reflect.Func {
		return va.Type() == vb.Type() && va.Pointer() == vb.Pointer()
	}
	return a == b
}
