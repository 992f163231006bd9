package resources_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type (
	R5A struct{ closed *atomic.Int32 }
	R5B struct{}
	R5C struct{}
	R5D struct{}
)

func (a *R5A) Close() error {
	if a == nil {
		panic("Close called on a nil *R5A")
	}
	a.closed.Add(1)
	return nil
}

// r5new builds an app with one pool of task type R and returns it and
// fx.New's error.
func r5new[R any](extra []fx.Option, opts ...workerpool.Option) (*fx.App, error) {
	all := append([]fx.Option{
		fx.NopLogger,
		workerpool.Provide[R]("p5", opts...),
		fx.Invoke(func(*workerpool.Pool[R]) {}),
	}, extra...)
	app := fx.New(all...)
	return app, app.Err()
}

func r5startStop(t *testing.T, app *fx.App) (startErr, stopErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	startErr = app.Start(ctx)
	stopErr = app.Stop(ctx)
	return
}

// "A constructor may not take fx.Lifecycle" — neither directly nor as a field
// of its fx.In parameter struct: fx.New reports it (ErrInvalidConstructor).
func TestAttack5_LifecycleInAnInStructIsRefused(t *testing.T) {
	type in struct {
		fx.In
		LC fx.Lifecycle
	}
	_, err := r5new[*R5B](nil, workerpool.Resources(resources.PerWorker(func(p in) *R5B { return &R5B{} })))
	if err == nil {
		t.Fatal("fx.New accepted a per-worker constructor taking fx.Lifecycle in its fx.In struct")
	}
	if !errors.Is(err, resources.ErrInvalidConstructor) {
		t.Errorf("err = %v; want ErrInvalidConstructor", err)
	}
	if !strings.Contains(err.Error(), "p5") {
		t.Errorf("err %q does not name the pool", err)
	}
}

// "The zero Declaration is invalid" — fx.New must say so, not panic.
func TestAttack5_ZeroDeclarationFailsFxNew(t *testing.T) {
	var d resources.Declaration
	_ = d.String() // must not panic
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, err = r5new[*R5B](nil, workerpool.Resources(d))
	}()
	if err == nil {
		t.Fatal("fx.New accepted a zero Declaration")
	}
	if !errors.Is(err, resources.ErrInvalidConstructor) {
		t.Errorf("err = %v; want ErrInvalidConstructor", err)
	}
}

// "PerWorker never panics: a constructor it cannot use is reported by
// fx.New, naming it." An fx.Annotate'd constructor is not a func: a clear
// error, never a panic.
func TestAttack5_AnnotatedConstructorIsAnErrorNotAPanic(t *testing.T) {
	ann := fx.Annotate(func(a *R5C) *R5B { return &R5B{} }, fx.ParamTags(`name:"x"`))
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, err = r5new[*R5B](nil, workerpool.Resources(resources.PerWorker(ann)))
	}()
	if !errors.Is(err, resources.ErrInvalidConstructor) {
		t.Errorf("err = %v; want ErrInvalidConstructor", err)
	}
}

// "ErrDuplicate ... ErrCycle ... wrapped with the names of the pool and the
// culprits."
func TestAttack5_DuplicateAndCycleNameTheCulprits(t *testing.T) {
	_, err := r5new[*R5B](nil, workerpool.Resources(
		resources.PerWorker(func() *R5B { return &R5B{} }, resources.Name("first-b")),
		resources.PerWorker(func() (*R5B, error) { return &R5B{}, nil }, resources.Name("second-b")),
	))
	if !errors.Is(err, resources.ErrDuplicate) {
		t.Fatalf("err = %v; want ErrDuplicate", err)
	}
	for _, want := range []string{"p5", "attack5_test.go"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("duplicate error %q does not name %q", err, want)
		}
	}
	if strings.Count(err.Error(), "attack5_test.go") < 2 {
		t.Errorf("duplicate error %q does not name both constructors", err)
	}

	_, err = r5new[*R5B](nil, workerpool.Resources(
		resources.PerWorker(func(*R5C) *R5B { return &R5B{} }),
		resources.PerWorker(func(*R5D) *R5C { return &R5C{} }),
		resources.PerWorker(func(*R5B) *R5D { return &R5D{} }),
	))
	if !errors.Is(err, resources.ErrCycle) {
		t.Fatalf("err = %v; want ErrCycle", err)
	}
	for _, want := range []string{"p5", "R5B", "R5C", "R5D"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("cycle error %q does not name %q", err, want)
		}
	}
}

// Self-dependency is the smallest cycle.
func TestAttack5_SelfCycle(t *testing.T) {
	_, err := r5new[*R5B](nil, workerpool.Resources(
		resources.PerWorker(func(*R5B) *R5B { return &R5B{} }),
	))
	if !errors.Is(err, resources.ErrCycle) {
		t.Fatalf("err = %v; want ErrCycle", err)
	}
}

// "A T that has a Close() error ... and no explicit cleanup is closed
// automatically (nil values excepted)": with an explicit cleanup, Close is
// not called as well; a nil *T is not closed.
func TestAttack5_ExplicitCleanupReplacesCloseAndNilIsNotClosed(t *testing.T) {
	var closes, cleanups atomic.Int32
	for _, mode := range []string{"explicit", "nil", "auto"} {
		closes.Store(0)
		cleanups.Store(0)
		var ctor any
		switch mode {
		case "explicit":
			ctor = func() (*R5A, func(), error) {
				return &R5A{closed: &closes}, func() { cleanups.Add(1) }, nil
			}
		case "nil":
			ctor = func() (*R5A, error) { return nil, nil }
		case "auto":
			ctor = func() *R5A { return &R5A{closed: &closes} }
		}
		app, err := r5new[*R5A](nil, workerpool.Workers(3), workerpool.Resources(resources.PerWorker(ctor)))
		if err != nil {
			t.Fatal(err)
		}
		se, ste := r5startStop(t, app)
		if se != nil || ste != nil {
			t.Fatalf("%s: start %v stop %v", mode, se, ste)
		}
		want := map[string][2]int32{"explicit": {0, 3}, "nil": {0, 0}, "auto": {3, 0}}[mode]
		if got := [2]int32{closes.Load(), cleanups.Load()}; got != want {
			t.Errorf("%s: (Close calls, cleanup calls) = %v, want %v", mode, got, want)
		}
	}
}

// nilResourceCases are per-worker constructors whose value is nil in each
// way a value of an interface type can be — a nil interface, or one
// holding a nil pointer whose Close panics — through the direct path (a
// constructor of the context and the worker only), the reflective one
// (any other parameter) and fxpooltest.Inject, without and with an
// explicit cleanup that is nil. "A T that has a Close() error ... and no
// explicit cleanup is closed automatically (nil values excepted)": none is
// closed, and the app starts and stops without error.
var nilResourceCases = map[string]func() (*fx.App, error){
	"nil io.Closer, direct": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() (io.Closer, error) { return nil, nil })))
	},
	"nil io.Closer, reflective": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() *R5B { return &R5B{} }),
			resources.PerWorker(func(*R5B) (io.Closer, error) { return nil, nil })))
	},
	"nil ctx closer, direct": func() (*fx.App, error) {
		return r5new[r5CtxCloser](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() r5CtxCloser { return nil })))
	},
	"nil ctx closer, reflective": func() (*fx.App, error) {
		return r5new[r5CtxCloser](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() *R5B { return &R5B{} }),
			resources.PerWorker(func(*R5B) r5CtxCloser { return nil })))
	},
	"io.Closer holding a nil *R5A, direct": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() io.Closer { return (*R5A)(nil) })))
	},
	"io.Closer holding a nil *R5A, reflective": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() *R5B { return &R5B{} }),
			resources.PerWorker(func(*R5B) io.Closer { return (*R5A)(nil) })))
	},
	"nil io.Closer, nil explicit cleanup, direct": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func(resources.Worker) (io.Closer, func(), error) { return nil, nil, nil })))
	},
	"nil io.Closer, nil explicit cleanup, reflective": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(func() *R5B { return &R5B{} }),
			resources.PerWorker(func(*R5B) (io.Closer, func() error, error) { return nil, nil, nil })))
	},
	"nil io.Closer, fxpooltest.Inject": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(fxpooltest.Inject(func() (io.Closer, error) { return nil, nil }))))
	},
	"io.Closer holding a nil *R5A, fxpooltest.Inject": func() (*fx.App, error) {
		return r5new[io.Closer](nil, workerpool.Workers(2), workerpool.Resources(
			resources.PerWorker(fxpooltest.Inject(func() io.Closer { return (*R5A)(nil) }))))
	},
}

// TestNilInterfaceResourceIsNotClosed runs each of nilResourceCases in a
// child process: the failure it guards against (looking for the Close
// method of a nil interface) crashed the process from a worker's
// goroutine.
func TestNilInterfaceResourceIsNotClosed(t *testing.T) {
	if name := os.Getenv("R5_NIL_CASE"); name != "" {
		app, err := nilResourceCases[name]()
		if err != nil {
			fmt.Println("fx.New:", err)
			os.Exit(3)
		}
		se, ste := r5startStop(t, app)
		fmt.Printf("child done: start=%v stop=%v\n", se, ste)
		os.Exit(0)
	}
	for name := range nilResourceCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestNilInterfaceResourceIsNotClosed$")
			// Under -race a process sleeps for a second as it exits
			// unless told not to.
			cmd.Env = append(os.Environ(), "R5_NIL_CASE="+name, strings.TrimSpace("GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE")))
			out, err := cmd.CombinedOutput()
			if err != nil {
				first, _, _ := strings.Cut(string(out), "\n\n")
				t.Fatalf("the child failed (%v):\n%s", err, first)
			}
			if !strings.Contains(string(out), "child done: start=<nil> stop=<nil>") {
				t.Errorf("child output:\n%s", out)
			}
		})
	}
}

// r5CtxCloser is an interface with the other Close form PerWorker knows.
type r5CtxCloser interface{ Close(context.Context) error }

// RELIABILITY: "an open that returns an error, returns a value and a
// cleanup with its error (both must be ignored)"; README: "none whose open
// failed is closed".
func TestAttack5_FailedOpenWithValueAndCleanupClosesNothing(t *testing.T) {
	var closes, cleanups, bOpens, bCleanups atomic.Int32
	boom := errors.New("boom")
	var calls atomic.Int32
	app, err := r5new[*R5A](nil, workerpool.Workers(4), workerpool.Resources(
		resources.PerWorker(func() (*R5B, func(), error) {
			bOpens.Add(1)
			return &R5B{}, func() { bCleanups.Add(1) }, nil
		}),
		resources.PerWorker(func(w resources.Worker, _ *R5B) (*R5A, func() error, error) {
			calls.Add(1)
			if w.ID == 2 {
				return &R5A{closed: &closes}, func() error { cleanups.Add(1); return nil }, boom
			}
			return &R5A{closed: &closes}, func() error { cleanups.Add(1); return nil }, nil
		}, resources.Name("the-a")),
	))
	if err != nil {
		t.Fatal(err)
	}
	se, _ := r5startStop(t, app)
	if !errors.Is(se, boom) {
		t.Fatalf("start = %v; want boom", se)
	}
	var oe *resources.OpenError
	if !errors.As(se, &oe) {
		t.Fatalf("start error %v has no *OpenError", se)
	}
	if oe.Resource != "the-a" || !strings.Contains(oe.Constructor, "attack5_test.go:") || !errors.Is(oe, boom) {
		t.Errorf("OpenError = %+v", oe)
	}
	opened := calls.Load() - 1 // worker 2's failed
	if closes.Load() != 0 {
		t.Errorf("Close was called %d times despite explicit cleanups", closes.Load())
	}
	if cleanups.Load() != opened {
		t.Errorf("%d A opened, %d cleaned up (the failed one must not be)", opened, cleanups.Load())
	}
	// Workers open in parallel and the failure of worker 2 stops those
	// that have not begun: how many B opened is up to the scheduler, but
	// each that did is closed, worker 2's too.
	if bOpens.Load() == 0 || bCleanups.Load() != bOpens.Load() {
		t.Errorf("%d B opened, %d cleaned up", bOpens.Load(), bCleanups.Load())
	}
}

// "A constructor may take a leading context.Context: the context of the
// open, which ends when the open is over — for a worker opened by the pool's
// start, when the start returns, whether it succeeded or not."
func TestAttack5_ConstructorContextEndsWhenTheStartReturns(t *testing.T) {
	var mu sync.Mutex
	var ctxs []context.Context
	for _, fail := range []bool{false, true} {
		ctxs = nil
		app, err := r5new[*R5B](nil, workerpool.Workers(3), workerpool.Resources(
			resources.PerWorker(func(ctx context.Context, w resources.Worker) (*R5B, error) {
				mu.Lock()
				ctxs = append(ctxs, ctx)
				mu.Unlock()
				if fail && w.ID == 1 {
					return nil, errors.New("fail")
				}
				return &R5B{}, nil
			}),
		))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		se := app.Start(ctx)
		if (se != nil) != fail {
			t.Fatalf("fail=%v start=%v", fail, se)
		}
		mu.Lock()
		for i, c := range ctxs {
			if c.Err() == nil {
				t.Errorf("fail=%v: constructor context %d still live after Start returned", fail, i)
			}
		}
		mu.Unlock()
		_ = app.Stop(ctx)
		cancel()
	}
}

// "Worker identifies the worker ... ID is the worker's number in its pool,
// from 0 ... Generation ... 0 for the first": a constructor and a task see
// the same Worker; IDs are 0..n-1, each once.
func TestAttack5_WorkerIdentity(t *testing.T) {
	type deps struct {
		fx.In
		W resources.Worker
		B *R5B
	}
	var mu sync.Mutex
	seen := map[int]resources.Worker{}
	app, err := r5new[deps](nil, workerpool.Workers(5), workerpool.Resources(
		resources.PerWorker(func(w resources.Worker) *R5B {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := seen[w.ID]; dup {
				panic(fmt.Sprintf("worker %d opened twice", w.ID))
			}
			seen[w.ID] = w
			return &R5B{}
		}),
	))
	if err != nil {
		t.Fatal(err)
	}
	se, ste := r5startStop(t, app)
	if se != nil || ste != nil {
		t.Fatal(se, ste)
	}
	for id := range 5 {
		w, ok := seen[id]
		if !ok || w.Pool != "p5" || w.Generation != 0 || w.ID != id {
			t.Errorf("worker %d: %+v (ok %v)", id, w, ok)
		}
	}
}

// "A parameter may be an fx.In struct, whose fields may carry the
// optional:"true" and name:"..." tags ... every other parameter is taken once
// from the fx graph."
func TestAttack5_InTagsFromTheGraph(t *testing.T) {
	type in struct {
		fx.In
		Named   string `name:"greeting"`
		Missing *R5D   `optional:"true"`
		Shared  *R5C
		W       resources.Worker
	}
	var built atomic.Int32
	var bad atomic.Int32
	extra := []fx.Option{
		fx.Provide(fx.Annotate(func() string { return "hello" }, fx.ResultTags(`name:"greeting"`))),
		fx.Provide(func() *R5C { built.Add(1); return &R5C{} }),
	}
	app, err := r5new[*R5B](extra, workerpool.Workers(4), workerpool.Resources(
		resources.PerWorker(func(p in) *R5B {
			if p.Named != "hello" || p.Missing != nil || p.Shared == nil {
				bad.Add(1)
			}
			return &R5B{}
		}),
	))
	if err != nil {
		t.Fatal(err)
	}
	se, ste := r5startStop(t, app)
	if se != nil || ste != nil {
		t.Fatal(se, ste)
	}
	if bad.Load() != 0 || built.Load() != 1 {
		t.Errorf("bad params %d, app-scoped constructor ran %d times (want once)", bad.Load(), built.Load())
	}
}

// A group:"..." field of an fx.In parameter is taken from the fx graph,
// with every value of the group.
func TestAttack5_GroupTagFieldIsTakenFromTheGraph(t *testing.T) {
	type in struct {
		fx.In
		All []string `group:"words"`
	}
	extra := []fx.Option{
		fx.Provide(fx.Annotate(func() string { return "a" }, fx.ResultTags(`group:"words"`))),
		fx.Provide(fx.Annotate(func() string { return "b" }, fx.ResultTags(`group:"words"`))),
	}
	var got atomic.Int32
	app, err := r5new[*R5B](extra, workerpool.Workers(1), workerpool.Resources(
		resources.PerWorker(func(p in) *R5B { got.Store(int32(len(p.All))); return &R5B{} }),
	))
	if err != nil {
		t.Fatal(err)
	}
	se, ste := r5startStop(t, app)
	if se != nil || ste != nil {
		t.Fatal(se, ste)
	}
	if got.Load() != 2 {
		t.Errorf("the constructor saw %d values of the group, want 2", got.Load())
	}
}

// "Check ... T must be the type the constructor returns": a Check of the
// wrong type is a declaration error from fx.New, not a panic at run time.
func TestAttack5_CheckOfTheWrongTypeFailsFxNew(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, err = r5new[*R5B](nil, workerpool.Resources(
			resources.PerWorker(func() *R5B { return &R5B{} },
				resources.Check(func(context.Context, *R5C) error { return nil })),
		))
	}()
	if err == nil {
		t.Fatal("fx.New accepted a Check of *R5C on a *R5B resource")
	}
	if !strings.Contains(err.Error(), "p5") {
		t.Errorf("err %q does not name the pool", err)
	}
}

// Check(nil): PerWorker never panics; fx.New refuses a nil check, which
// would otherwise crash a worker later.
func TestAttack5_NilCheckFailsFxNew(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, err = r5new[*R5B](nil, workerpool.CheckIdle(time.Nanosecond), workerpool.Resources(
			resources.PerWorker(func() *R5B { return &R5B{} }, resources.Check[*R5B](nil)),
		))
	}()
	if !errors.Is(err, resources.ErrInvalidConstructor) {
		t.Errorf("err = %v; want ErrInvalidConstructor", err)
	}
}

// "Panics in constructors and cleanups become errors that name the
// resource": the start's error holds an *OpenError whose Err is a
// *hooks.PanicError.
func TestAttack5_PanicInConstructorIsAnOpenErrorWithPanicError(t *testing.T) {
	app, err := r5new[*R5B](nil, workerpool.Workers(2), workerpool.Resources(
		resources.PerWorker(func() *R5B { panic("kaboom") }, resources.Name("exploding")),
	))
	if err != nil {
		t.Fatal(err)
	}
	se, _ := r5startStop(t, app)
	var oe *resources.OpenError
	if !errors.As(se, &oe) || oe.Resource != "exploding" {
		t.Fatalf("start = %v; want *OpenError for exploding", se)
	}
	var pe *hooks.PanicError
	if !errors.As(oe.Err, &pe) || pe.Value != "kaboom" {
		t.Errorf("OpenError.Err = %#v; want *hooks.PanicError(kaboom)", oe.Err)
	}
	if !strings.Contains(se.Error(), "exploding") || !strings.Contains(se.Error(), "p5") {
		t.Errorf("start error %q does not name the pool and resource", se)
	}
}

// "It closes them in exactly the reverse order" of a diamond: D needs B and
// C, both need A. A closes last, D first, in every worker; and a task error
// wrapping ErrBroken rebuilds the same way.
func TestAttack5_DiamondReverseOrderIncludingRebuild(t *testing.T) {
	type log struct {
		mu sync.Mutex
		ev map[string][]string // "w/gen" -> events
	}
	l := &log{ev: map[string][]string{}}
	add := func(w resources.Worker, s string) {
		l.mu.Lock()
		k := fmt.Sprintf("%d/%d", w.ID, w.Generation)
		l.ev[k] = append(l.ev[k], s)
		l.mu.Unlock()
	}
	mk := func(name string) func(w resources.Worker) func() {
		return func(w resources.Worker) func() {
			add(w, "open "+name)
			return func() { add(w, "close "+name) }
		}
	}
	oa, ob, oc, od := mk("A"), mk("B"), mk("C"), mk("D")
	type diamondDeps struct {
		fx.In
		D *R5D
	}
	app, err := r5new[diamondDeps](
		[]fx.Option{fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[diamondDeps]) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				for range 3 {
					err := p.Do(ctx, func(context.Context, diamondDeps) error {
						return fmt.Errorf("bad: %w", resources.ErrBroken)
					})
					if !errors.Is(err, resources.ErrBroken) {
						return fmt.Errorf("Do = %v", err)
					}
				}
				return nil
			}))
		})},
		workerpool.Workers(2),
		workerpool.Resources(
			resources.PerWorker(func(w resources.Worker, _ *R5B, _ *R5C) (*R5D, func(), error) { return &R5D{}, od(w), nil }),
			resources.PerWorker(func(w resources.Worker, _ *R5A) (*R5C, func(), error) { return &R5C{}, oc(w), nil }),
			resources.PerWorker(func(w resources.Worker, _ *R5A) (*R5B, func(), error) { return &R5B{}, ob(w), nil }),
			resources.PerWorker(func(w resources.Worker) (*R5A, func(), error) { return &R5A{}, oa(w), nil }),
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	se, ste := r5startStop(t, app)
	if se != nil || ste != nil {
		t.Fatal(se, ste)
	}
	gens := 0
	for k, ev := range l.ev {
		gens++
		var opens, closes []string
		for _, e := range ev {
			if n, ok := strings.CutPrefix(e, "open "); ok {
				opens = append(opens, n)
			} else {
				closes = append(closes, strings.TrimPrefix(e, "close "))
			}
		}
		rev := slices.Clone(opens)
		slices.Reverse(rev)
		if !slices.Equal(closes, rev) || len(opens) != 4 || opens[0] != "A" || opens[3] != "D" {
			t.Errorf("%s: events %q: closes are not the opens reversed", k, ev)
		}
	}
	if gens != 2+3 {
		t.Errorf("%d generations, want 5 (2 workers + 3 rebuilds)", gens)
	}
}
