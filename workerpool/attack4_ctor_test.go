package workerpool_test

// Round 4 of adversarial tests: per-worker constructors of every documented
// form, now partly called without reflection. Each resource opens once per
// worker, closes once, in reverse order; a failing or panicking one is an
// error naming it; checks run.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a4Log journals opens and closes: "open T w<id>" and "close T w<id>".
type a4Log struct {
	mu    sync.Mutex
	lines []string
}

func (l *a4Log) add(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *a4Log) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// The resources of one worker, in dependency order: each takes the one
// before it. Every form of constructor makes one of them.
type (
	a4R1  struct{ w W }     // func(Worker) R
	a4R2  struct{ r *a4R1 } // func(ctx, Worker) (R, error), Close() error
	a4R3  struct{ r *a4R2 } // (R, func(), error)
	a4R4  struct{ r *a4R3 } // (R, func() error, error)
	a4R5  struct{ r *a4R4 } // (R, func(ctx) error, error)
	a4R6  struct{ r *a4R5 } // fx.In struct, Close(ctx) error
	a4R7  struct{ r *a4R6 } // R with a Close method and an explicit cleanup
	a4R8  struct{}          // (R, error) of a nil R with a Close method
	a4R9  struct{ w W }     // func(R) R without Close: nothing to close
	a4App struct{}          // app-scoped
)

func (r *a4R2) Close() error { a4Global.add("close R2 w%d", r.r.w.ID); return nil }
func (r *a4R6) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		a4Global.add("R6 close without deadline")
	}
	a4Global.add("close R6 w%d", r.r.r.r.r.r.w.ID)
	return nil
}
func (r *a4R7) Close() error {
	a4Global.add("R7 Close method called w%d", r.r.r.r.r.r.r.w.ID)
	return nil
}
func (r *a4R8) Close() error { a4Global.add("R8 Close of nil"); return nil }

// a4Global is the journal the Close methods write to; tests that use it do
// not run in parallel.
var a4Global = &a4Log{}

type a4R6In struct {
	fx.In
	R5   *a4R5
	App  *a4App
	Opt  *strings.Builder `optional:"true"`
	Name string           `name:"a4name"`
}

type a4Deps struct {
	fx.In
	R9 *a4R9
	W  W
}

func TestAttack4EveryConstructorForm(t *testing.T) {
	a4Global = &a4Log{}
	l := a4Global
	var appBuilt atomic.Int32
	checks := make(chan W, 64)
	const workers = 3
	var p *workerpool.Pool[a4Deps]
	app := fx.New(fx.NopLogger,
		fx.Provide(func() *a4App { appBuilt.Add(1); return &a4App{} }),
		fx.Provide(fx.Annotate(func() string { return "nm" }, fx.ResultTags(`name:"a4name"`))),
		workerpool.Provide[a4Deps]("a4ctor", workerpool.Workers(workers), workerpool.CheckIdle(time.Nanosecond),
			workerpool.Resources(
				resources.PerWorker(func(w W) *a4R1 { l.add("open R1 w%d", w.ID); return &a4R1{w} }),
				resources.PerWorker(func(ctx context.Context, w W, r *a4R1) (*a4R2, error) {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					l.add("open R2 w%d", w.ID)
					return &a4R2{r}, nil
				}, resources.Check(func(_ context.Context, r *a4R2) error { checks <- r.r.w; return nil })),
				resources.PerWorker(func(r *a4R2) (*a4R3, func(), error) {
					id := r.r.w.ID
					l.add("open R3 w%d", id)
					return &a4R3{r}, func() { l.add("close R3 w%d", id) }, nil
				}),
				resources.PerWorker(func(r *a4R3) (*a4R4, func() error, error) {
					id := r.r.r.w.ID
					l.add("open R4 w%d", id)
					return &a4R4{r}, func() error { l.add("close R4 w%d", id); return nil }, nil
				}),
				resources.PerWorker(func(r *a4R4) (*a4R5, func(context.Context) error, error) {
					id := r.r.r.r.w.ID
					l.add("open R5 w%d", id)
					return &a4R5{r}, func(ctx context.Context) error {
						if _, ok := ctx.Deadline(); !ok {
							l.add("R5 cleanup without deadline")
						}
						l.add("close R5 w%d", id)
						return nil
					}, nil
				}),
				resources.PerWorker(func(in a4R6In) *a4R6 {
					if in.App == nil || in.Opt != nil || in.Name != "nm" {
						l.add("R6 bad fx.In: %+v", in)
					}
					l.add("open R6 w%d", in.R5.r.r.r.r.w.ID)
					return &a4R6{in.R5}
				}),
				resources.PerWorker(func(r *a4R6) (*a4R7, func(), error) {
					id := r.r.r.r.r.r.w.ID
					l.add("open R7 w%d", id)
					return &a4R7{r}, func() { l.add("close R7 w%d", id) }, nil
				}),
				resources.PerWorker(func(r *a4R7) (*a4R8, error) {
					l.add("open R8 w%d", r.r.r.r.r.r.r.w.ID)
					return nil, nil
				}),
				resources.PerWorker(func(r *a4R8, r7 *a4R7, w W) *a4R9 {
					if r != nil {
						l.add("R9 got a non-nil R8")
					}
					l.add("open R9 w%d", w.ID)
					return &a4R9{w}
				}),
			)),
		fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := p.Do(context.Background(), func(_ context.Context, d a4Deps) error {
			if d.R9 == nil || d.R9.w.ID != d.W.ID {
				return fmt.Errorf("task %d: R9 %v of worker %v", i, d.R9, d.W)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Stop(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	close(checks)
	nChecks := 0
	for range checks {
		nChecks++
	}
	if nChecks == 0 {
		t.Error("CheckIdle(1ns): the Check of R2 never ran")
	}
	if appBuilt.Load() != 1 {
		t.Errorf("the app-scoped value was built %d times", appBuilt.Load())
	}
	lines := l.snapshot()
	opens := map[string]int{}
	pos := map[string]int{}
	for i, line := range lines {
		if strings.HasPrefix(line, "open ") || strings.HasPrefix(line, "close ") {
			opens[line]++
			pos[line] = i
			continue
		}
		t.Errorf("journal: %s", line)
	}
	for w := range workers {
		for r := 1; r <= 9; r++ {
			if n := opens[fmt.Sprintf("open R%d w%d", r, w)]; n != 1 {
				t.Errorf("R%d of worker %d opened %d times", r, w, n)
			}
		}
		// R7 closes by its cleanup, R6 and R2 by their Close methods; R1,
		// R8 (nil) and R9 have nothing to close.
		closing := []int{7, 6, 5, 4, 3, 2}
		last := -1
		for _, r := range closing {
			key := fmt.Sprintf("close R%d w%d", r, w)
			if n := opens[key]; n != 1 {
				t.Errorf("R%d of worker %d closed %d times", r, w, n)
				continue
			}
			if pos[key] < last {
				t.Errorf("worker %d: R%d closed before a resource that depends on it", w, r)
			}
			last = pos[key]
		}
	}
	if t.Failed() {
		t.Logf("journal:\n%s", strings.Join(lines, "\n"))
	}
}

// a4Closer is a named func type of cleanup.
type a4Closer func() error

// a4Flusher is a named func type of context cleanup.
type a4Flusher func(context.Context) error

type a4N1 struct{}
type a4N2 struct{}

// TestAttack4NamedCleanupTypes: a cleanup of a named func type is either
// taken as a cleanup, and called once per worker, or refused by fx.New
// naming the constructor; never silently dropped.
func TestAttack4NamedCleanupTypes(t *testing.T) {
	var closes1, closes2 atomic.Int32
	type deps struct {
		fx.In
		A *a4N1
		B *a4N2
	}
	var p *workerpool.Pool[deps]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[deps]("a4named", workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() (*a4N1, a4Closer, error) {
				return &a4N1{}, func() error { closes1.Add(1); return nil }, nil
			}),
			resources.PerWorker(func() (*a4N2, a4Flusher, error) {
				return &a4N2{}, func(context.Context) error { closes2.Add(1); return nil }, nil
			}),
		)), fx.Populate(&p))
	if err := app.Err(); err != nil {
		if !strings.Contains(err.Error(), "a4named") {
			t.Errorf("fx.New refused a named cleanup type without naming the pool: %v", err)
		}
		t.Logf("refused: %v", err)
		return
	}
	if err := app.Start(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	if closes1.Load() != 2 || closes2.Load() != 2 {
		t.Errorf("named cleanups called %d and %d times, want 2 each (one per worker)", closes1.Load(), closes2.Load())
	}
}

type a4Bad struct{}
type a4Top struct{ b *a4Bad }

// TestAttack4FailingAndPanickingConstructorsNameTheResource: a constructor
// that fails, panics or calls runtime.Goexit — on the first open, or on a
// rebuild — is an error that names the resource; the first open's error is
// an *OpenError; what had opened is closed once.
func TestAttack4FailingAndPanickingConstructorsNameTheResource(t *testing.T) {
	a4CtorFailure(t, "error", "panic")
}

// a4CtorFailure runs the test above for each mode: error, panic, goexit.
func a4CtorFailure(t *testing.T, modes ...string) {
	for _, mode := range modes {
		for _, named := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/named=%v", mode, named), func(t *testing.T) {
				var opened, closed atomic.Int32
				var p *workerpool.Pool[*a4Top]
				app := fx.New(fx.NopLogger,
					workerpool.Provide[*a4Top]("a4fail"+mode, workerpool.Workers(2), workerpool.Resources(
						resources.PerWorker(func(w W) (*a4Bad, func(), error) {
							opened.Add(1)
							return &a4Bad{}, func() { closed.Add(1) }, nil
						}),
						resources.PerWorker(func(ctx context.Context, b *a4Bad, w W) (*a4Top, error) {
							if w.ID == 1 {
								switch mode {
								case "error":
									return nil, errors.New("no top for you")
								case "panic":
									panic("top exploded")
								default:
									runtimeGoexit()
								}
							}
							return &a4Top{b}, nil
						}, a4NameOpt(named)...),
					)), fx.Populate(&p))
				if err := app.Err(); err != nil {
					t.Fatal(err)
				}
				err := app.Start(a3Ctx(t, a4Hang))
				if err == nil {
					_ = app.Stop(a3Ctx(t, a4Hang))
					t.Fatal("Start succeeded")
				}
				name := "*workerpool_test.a4Top"
				if named {
					name = "top-res"
				}
				var oe *resources.OpenError
				if !errors.As(err, &oe) {
					t.Errorf("Start = %v: no *resources.OpenError", err)
				} else if oe.Resource != name {
					t.Errorf("OpenError.Resource = %q, want %q", oe.Resource, name)
				}
				if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "a4fail"+mode) {
					t.Errorf("Start = %q: does not name the resource %q and the pool", err, name)
				}
				if mode == "panic" {
					var pe *hooks.PanicError
					if !errors.As(err, &pe) {
						t.Errorf("Start = %v: no *hooks.PanicError", err)
					}
				}
				if opened.Load() != closed.Load() {
					t.Errorf("%d opened, %d closed", opened.Load(), closed.Load())
				}
			})
		}
	}
}

func a4NameOpt(named bool) []resources.Option {
	if named {
		return []resources.Option{resources.Name("top-res")}
	}
	return nil
}

// TestAttack4RebuildConstructorFailureNamesTheResource: a constructor that
// fails or panics on a rebuild (after ErrBroken) is reported through
// the WorkerOpened event with an error naming the resource, the worker
// retries, and every resource that opened closes exactly once.
func TestAttack4RebuildConstructorFailureNamesTheResource(t *testing.T) {
	a4RebuildFailure(t, "error")
}

// a4RebuildFailure runs the test above: the first try of the rebuild
// panics, the second fails as second says (error or goexit).
func a4RebuildFailure(t *testing.T, second string) {
	var gen1Tries atomic.Int32
	var opened, closed atomic.Int32
	var mu sync.Mutex
	var openErrs []error
	var p *workerpool.Pool[*a4Top]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*a4Top]("a4rebuild"+second, workerpool.Workers(1),
			workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
			workerpool.Events(func(e workerpool.Event) {
				if wo, ok := e.(workerpool.WorkerOpened); ok && wo.Err != nil {
					mu.Lock()
					openErrs = append(openErrs, wo.Err)
					mu.Unlock()
				}
			}),
			workerpool.Resources(
				resources.PerWorker(func(w W) (*a4Bad, func(), error) {
					opened.Add(1)
					return &a4Bad{}, func() { closed.Add(1) }, nil
				}),
				resources.PerWorker(func(b *a4Bad, w W) (*a4Top, error) {
					if w.Generation == 1 {
						switch gen1Tries.Add(1) {
						case 1:
							panic("rebuild exploded")
						case 2:
							if second == "goexit" {
								runtimeGoexit()
							}
							return nil, errors.New("rebuild failed")
						}
					}
					return &a4Top{b}, nil
				}, resources.Name("topper")),
			)), fx.Populate(&p))
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	if err := p.Do(context.Background(), func(context.Context, *a4Top) error { return resources.ErrBroken }); !errors.Is(err, resources.ErrBroken) {
		t.Fatalf("Do = %v", err)
	}
	if err := p.Do(context.Background(), func(context.Context, *a4Top) error { return nil }); err != nil {
		t.Fatalf("Do after the rebuild = %v", err)
	}
	if err := app.Stop(a3Ctx(t, a4Hang)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(openErrs) != 2 {
		t.Errorf("%d failed opens reported, want 2: %v", len(openErrs), openErrs)
	}
	for _, err := range openErrs {
		var oe *resources.OpenError
		if !strings.Contains(err.Error(), "topper") || !errors.As(err, &oe) || oe.Resource != "topper" {
			t.Errorf("failed rebuild %q does not name the resource topper in an *OpenError", err)
		}
	}
	if opened.Load() != closed.Load() || opened.Load() != 4 {
		t.Errorf("%d opened, %d closed, want 4 each (generation 0, two failed tries of 1, 1)", opened.Load(), closed.Load())
	}
}

func runtimeGoexit() { runtime.Goexit() }
