package workerpool_test

// Round 10: a constructor that calls runtime.Goexit, in each of the forms a
// constructor may take (T; (T, error); (T, cleanup, error) with each kind of
// cleanup; a leading context; an fx.In parameter struct; an app-scoped
// parameter), at the start and in a rebuild, with and without LockOSThread:
// the start fails (never hangs) naming the resource and Goexit, and the
// resource opened before it closes exactly once; in a rebuild, the pool
// goes on and stops cleanly.

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

type A10GA struct{}
type A10GB struct{}
type A10GApp struct{}
type A10GIn struct {
	fx.In
	A   *A10GA
	App *A10GApp
}

func TestAttack10GoexitConstructorForms(t *testing.T) {
	var aOpen, aClose atomic.Int32
	var fire atomic.Bool
	gx := func() {
		if fire.Load() {
			runtime.Goexit()
		}
	}
	forms := map[string]any{
		"T":                   func(*A10GA) *A10GB { gx(); return &A10GB{} },
		"T,error":             func(*A10GA) (*A10GB, error) { gx(); return &A10GB{}, nil },
		"T,func(),error":      func(*A10GA) (*A10GB, func(), error) { gx(); return &A10GB{}, func() {}, nil },
		"T,func()error,error": func(*A10GA) (*A10GB, func() error, error) { gx(); return &A10GB{}, func() error { return nil }, nil },
		"T,func(ctx)error,error": func(*A10GA) (*A10GB, func(context.Context) error, error) {
			gx()
			return &A10GB{}, func(context.Context) error { return nil }, nil
		},
		"ctx,T":     func(_ context.Context, _ *A10GA) *A10GB { gx(); return &A10GB{} },
		"fx.In":     func(in A10GIn) (*A10GB, error) { gx(); return &A10GB{}, nil },
		"ctx,fx.In": func(_ context.Context, in A10GIn, w W) (*A10GB, error) { gx(); return &A10GB{}, nil },
	}
	for name, ctor := range forms {
		for _, where := range []string{"start", "rebuild"} {
			for _, locked := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/locked=%v", name, where, locked), func(t *testing.T) {
					aOpen.Store(0)
					aClose.Store(0)
					fire.Store(where == "start")
					opts := []workerpool.Option{workerpool.Workers(3), workerpool.ErrorHandler(func(error) {}),
						workerpool.Resources(
							resources.PerWorker(func() (*A10GA, func(), error) {
								aOpen.Add(1)
								return &A10GA{}, func() { aClose.Add(1) }, nil
							}),
							resources.PerWorker(ctor, resources.Name("gxres")),
						)}
					if locked {
						opts = append(opts, workerpool.LockOSThread())
					}
					var p *workerpool.Pool[*A10GB]
					app := a10app(t, &p, "a10gxf", []fx.Option{fx.Supply(zap.NewNop()), fx.Supply(&A10GApp{})}, opts...)
					ctx, cancel := a10ctx(20 * time.Second)
					defer cancel()
					var err error
					a10within(t, "Start", 25*time.Second, func() { err = app.Start(ctx) })
					if where == "start" {
						if err == nil {
							t.Fatal("start succeeded")
						}
						if !strings.Contains(err.Error(), "gxres") || !strings.Contains(strings.ToLower(err.Error()), "goexit") {
							t.Errorf("error does not name the resource and Goexit: %v", err)
						}
						if aOpen.Load() != aClose.Load() {
							t.Errorf("after the failed start: A opened %d, closed %d", aOpen.Load(), aClose.Load())
						}
					} else {
						if err != nil {
							t.Fatal(err)
						}
						fire.Store(true)
						_ = p.Do(ctx, func(context.Context, *A10GB) error { return resources.ErrBroken })
						atkPoll(t, "the rebuild tried", 10*time.Second, func() bool { return aOpen.Load() > 3 })
						fire.Store(false)
						// the pool goes on: the worker retries and serves.
						for range 6 {
							if err := p.Do(ctx, func(context.Context, *A10GB) error { return nil }); err != nil {
								t.Fatalf("Do after a Goexit in a rebuild: %v", err)
							}
						}
					}
					a10within(t, "Stop", 25*time.Second, func() { _ = app.Stop(ctx) })
					if aOpen.Load() != aClose.Load() {
						t.Errorf("after stop: A opened %d, closed %d", aOpen.Load(), aClose.Load())
					}
				})
			}
		}
	}
}
