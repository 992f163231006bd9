package resources_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// a15log is a concurrency-safe list of lines.
type a15log struct {
	mu    sync.Mutex
	lines []string
}

func (l *a15log) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *a15log) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// forWorker returns the lines ending with " w<id>" (without the suffix).
func (l *a15log) forWorker(id int) []string {
	var out []string
	suffix := fmt.Sprintf(" w%d", id)
	for _, ln := range l.get() {
		if s, ok := strings.CutSuffix(ln, suffix); ok {
			out = append(out, s)
		}
	}
	return out
}

func a15ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A chain A <- B <- C <- D, with every cleanup form.
type (
	a15A struct {
		l *a15log
		w int
	}
	a15B struct{}
	a15C struct{}
	a15D struct {
		l *a15log
		w int
	}
	a15E struct{}
)

// A closes through its Close(context.Context) error method.
func (a *a15A) Close(ctx context.Context) error {
	_, has := ctx.Deadline()
	a.l.add("close A deadline=%v w%d", has, a.w)
	return nil
}

// D closes through its Close() error method.
func (d *a15D) Close() error {
	d.l.add("close D w%d", d.w)
	return nil
}

// Declared in shuffled order; R needs D only (and its worker); E is declared,
// not needed, and would fail to open.
func TestAttack15AcceptChainOpensInOrderClosesInReverseEveryForm(t *testing.T) {
	l := &a15log{}
	type deps struct {
		fx.In
		D *a15D
		W resources.Worker
	}
	var pool *workerpool.Pool[deps]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[deps]("chain",
			workerpool.Workers(3),
			workerpool.Resources(
				resources.PerWorker(func(c *a15C, w resources.Worker) *a15D {
					l.add("open D w%d", w.ID)
					return &a15D{l: l, w: w.ID}
				}),
				resources.PerWorker(func(ctx context.Context, w resources.Worker) (*a15A, error) {
					l.add("open A w%d", w.ID)
					return &a15A{l: l, w: w.ID}, nil
				}),
				resources.PerWorker(func(b *a15B, w resources.Worker) (*a15C, func() error, error) {
					l.add("open C w%d", w.ID)
					return &a15C{}, func() error { l.add("close C w%d", w.ID); return nil }, nil
				}),
				resources.PerWorker(func(ctx context.Context, a *a15A, w resources.Worker) (*a15B, func(), error) {
					l.add("open B w%d", w.ID)
					return &a15B{}, func() { l.add("close B w%d", w.ID) }, nil
				}),
				resources.PerWorker(func() (*a15E, error) {
					l.add("open E")
					return nil, errors.New("E must never open: R does not need it")
				}),
			),
		),
		fx.Populate(&pool),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx := a15ctx(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 12 {
		if err := pool.Do(ctx, func(_ context.Context, d deps) error {
			if d.D == nil || d.D.w != d.W.ID {
				return fmt.Errorf("worker %d got D of worker %v", d.W.ID, d.D)
			}
			seen[d.W.ID] = true // Do serialises the writes
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"open A", "open B", "open C", "open D", "close D", "close C", "close B", "close A deadline=true"}
	for w := range 3 {
		if got := l.forWorker(w); !slices.Equal(got, want) {
			t.Errorf("worker %d: %q\nwant %q", w, got, want)
		}
	}
	if slices.Contains(l.get(), "open E") {
		t.Errorf("E opened though R does not need it: %q", l.get())
	}
}

var (
	errA15CloseA = errors.New("resource A would not close")
	errA15CloseC = errors.New("resource C would not close")
	errA15PanicB = errors.New("resource B panicked")
)

type a15FailA struct{ l *a15log }

func (a *a15FailA) Close(context.Context) error {
	a.l.add("close A")
	return errA15CloseA
}

// Teardown errors of several resources on several workers are joined: each
// sentinel is found by errors.Is, the panic by errors.As, each resource is
// named, and every cleanup still ran exactly once.
func TestAttack15AcceptTeardownErrorsAreJoinedAndNamed(t *testing.T) {
	l := &a15log{}
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*a15C]("joined",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func() *a15FailA { l.add("open A"); return &a15FailA{l: l} }, resources.Name("alpha")),
				resources.PerWorker(func(*a15FailA) (*a15B, func(), error) {
					l.add("open B")
					return &a15B{}, func() { l.add("close B"); panic(errA15PanicB) }, nil
				}, resources.Name("bravo")),
				resources.PerWorker(func(*a15B) (*a15C, func(context.Context) error, error) {
					l.add("open C")
					return &a15C{}, func(context.Context) error { l.add("close C"); return errA15CloseC }, nil
				}, resources.Name("charlie")),
			),
		),
		fx.Invoke(func(*workerpool.Pool[*a15C]) {}),
	)
	ctx := a15ctx(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := app.Stop(ctx)
	if err == nil {
		t.Fatal("Stop returned nil; want the joined teardown errors")
	}
	for _, s := range []error{errA15CloseA, errA15CloseC, errA15PanicB} {
		if !errors.Is(err, s) {
			t.Errorf("errors.Is(stopErr, %v) = false: %v", s, err)
		}
	}
	var pe *hooks.PanicError
	if !errors.As(err, &pe) {
		t.Errorf("no *hooks.PanicError in the stop error: %v", err)
	}
	msg := err.Error()
	for _, s := range []string{"alpha", "bravo", "charlie", "joined", "worker 0", "worker 1"} {
		if !strings.Contains(msg, s) {
			t.Errorf("stop error does not mention %q: %s", s, msg)
		}
	}
	count := map[string]int{}
	for _, ln := range l.get() {
		count[ln]++
	}
	for _, s := range []string{"open A", "open B", "open C", "close A", "close B", "close C"} {
		if count[s] != 2 {
			t.Errorf("%q happened %d times; want 2 (one per worker): %q", s, count[s], l.get())
		}
	}
}

var errA15DiskFull = errors.New("disk full")

// Worker 1's C fails: the start fails, naming the pool, the worker and the
// resource; worker 1 closes B then A, never C or D; every resource that
// opened anywhere closed exactly once, in reverse.
func TestAttack15AcceptFailedOpenHalfwayRollsBackOnlyWhatOpened(t *testing.T) {
	l := &a15log{}
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*a15D]("halfway",
			workerpool.Workers(3),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) (*a15A, error) {
					l.add("open A w%d", w.ID)
					return &a15A{l: l, w: w.ID}, nil
				}),
				resources.PerWorker(func(_ *a15A, w resources.Worker) (*a15B, func(), error) {
					l.add("open B w%d", w.ID)
					return &a15B{}, func() { l.add("close B w%d", w.ID) }, nil
				}),
				resources.PerWorker(func(_ *a15B, w resources.Worker) (*a15C, func(), error) {
					if w.ID == 1 {
						// a value and a cleanup with an error: both ignored
						return &a15C{}, func() { l.add("close C w%d", w.ID) }, fmt.Errorf("open C: %w", errA15DiskFull)
					}
					l.add("open C w%d", w.ID)
					return &a15C{}, func() { l.add("close C w%d", w.ID) }, nil
				}),
				resources.PerWorker(func(_ *a15C, w resources.Worker) *a15D {
					l.add("open D w%d", w.ID)
					return &a15D{l: l, w: w.ID}
				}),
			),
		),
		fx.Invoke(func(*workerpool.Pool[*a15D]) {}),
	)
	ctx := a15ctx(t)
	err := app.Start(ctx)
	if err == nil {
		_ = app.Stop(ctx)
		t.Fatal("start succeeded though worker 1's C failed")
	}
	if !errors.Is(err, errA15DiskFull) {
		t.Errorf("errors.Is(startErr, errDiskFull) = false: %v", err)
	}
	var oe *resources.OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("no *resources.OpenError in %v", err)
	}
	if !strings.Contains(oe.Resource, "a15C") {
		t.Errorf("OpenError.Resource = %q; want the type name of C", oe.Resource)
	}
	if !strings.Contains(oe.Constructor, "attack15_accept_resources_test.go:") {
		t.Errorf("OpenError.Constructor = %q; want its file:line", oe.Constructor)
	}
	if !errors.Is(oe, errA15DiskFull) {
		t.Errorf("OpenError does not unwrap to the constructor's error: %v", oe)
	}
	for _, s := range []string{"halfway", "worker 1", "a15C"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("start error does not mention %q: %v", s, err)
		}
	}
	_ = app.Stop(ctx)
	if got, want := l.forWorker(1), []string{"open A", "open B", "close B", "close A deadline=true"}; !slices.Equal(got[:min(len(got), 3)], want[:3]) || len(got) != 4 || !strings.HasPrefix(got[3], "close A") {
		t.Errorf("worker 1: %q; want %q", got, want)
	}
	for _, w := range []int{0, 2} {
		got := l.forWorker(w)
		// a worker may or may not have opened, or opened halfway, before
		// the rollback: what it opened closed once, in reverse.
		var opened, closed []string
		for _, s := range got {
			if r, ok := strings.CutPrefix(s, "open "); ok {
				opened = append(opened, r)
			} else if r, ok := strings.CutPrefix(s, "close "); ok {
				closed = append(closed, r[:1])
			}
		}
		slices.Reverse(closed)
		if !slices.Equal(opened, closed) {
			t.Errorf("worker %d: opened %q, closed (reversed) %q", w, opened, closed)
		}
	}
}

// A panic in a constructor is an *OpenError whose Err is a *hooks.PanicError;
// errors.Is sees through a panic(err) to err; what opened is rolled back.
func TestAttack15AcceptPanicInConstructorIsAnOpenError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value any
	}{{"error", fmt.Errorf("wrapped: %w", errA15DiskFull)}, {"string", "plain string panic"}} {
		t.Run(tc.name, func(t *testing.T) {
			l := &a15log{}
			app := fx.New(fx.NopLogger,
				workerpool.Provide[*a15B]("panicky",
					workerpool.Workers(1),
					workerpool.Resources(
						resources.PerWorker(func(w resources.Worker) *a15A { l.add("open A w0"); return &a15A{l: l, w: w.ID} }),
						resources.PerWorker(func(*a15A) *a15B { panic(tc.value) }, resources.Name("bee")),
					),
				),
				fx.Invoke(func(*workerpool.Pool[*a15B]) {}),
			)
			ctx := a15ctx(t)
			err := app.Start(ctx)
			if err == nil {
				_ = app.Stop(ctx)
				t.Fatal("start succeeded")
			}
			var oe *resources.OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("no OpenError: %v", err)
			}
			if oe.Resource != "bee" {
				t.Errorf("OpenError.Resource = %q; want bee", oe.Resource)
			}
			var pe *hooks.PanicError
			if !errors.As(oe.Err, &pe) {
				t.Fatalf("OpenError.Err = %#v; want a *hooks.PanicError", oe.Err)
			}
			if e, ok := tc.value.(error); ok {
				if !errors.Is(err, errA15DiskFull) {
					t.Errorf("errors.Is does not see through panic(err): %v", err)
				}
				if pe.Value != e {
					t.Errorf("PanicError.Value = %v; want %v", pe.Value, e)
				}
			} else if !strings.Contains(err.Error(), "plain string panic") {
				t.Errorf("error does not carry the panic value: %v", err)
			}
			if got := l.forWorker(0); len(got) != 2 || !strings.HasPrefix(got[1], "close A") {
				t.Errorf("worker 0: %q; want A opened then closed", got)
			}
			_ = app.Stop(ctx)
		})
	}
}

// A type that another PerWorker constructor of the pool returns is the
// worker's own, even if the fx graph provides one of that type too.
func TestAttack15AcceptPerWorkerTypeShadowsTheGraph(t *testing.T) {
	type store struct{ owner int } // owner -1: the app's
	type user struct{ s *store }
	type deps struct {
		fx.In
		S *store
		U *user
		W resources.Worker
	}
	var pool *workerpool.Pool[deps]
	app := fx.New(fx.NopLogger,
		fx.Supply(&store{owner: -1}),
		workerpool.Provide[deps]("shadow",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) *store { return &store{owner: w.ID} }),
				resources.PerWorker(func(s *store) *user { return &user{s: s} }),
			),
		),
		fx.Populate(&pool),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx := a15ctx(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := app.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	for range 8 {
		if err := pool.Do(ctx, func(_ context.Context, d deps) error {
			if d.S.owner != d.W.ID || d.U.s != d.S {
				return fmt.Errorf("worker %d: store of %d, user's store of %d", d.W.ID, d.S.owner, d.U.s.owner)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
}

var errA15Check = errors.New("connection went stale")

// A failing health check of an idle worker makes it rebuild before the
// task: the event says "failed check" with the check's error as its cause,
// the task gets the next generation, and the old resources closed.
func TestAttack15AcceptFailingCheckRebuildsBeforeTheTask(t *testing.T) {
	type conn struct{ gen int }
	var (
		mu     sync.Mutex
		events []workerpool.Event
		checks int
		closes []int
	)
	var pool *workerpool.Pool[*conn]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*conn]("checked",
			workerpool.Workers(1),
			workerpool.CheckIdle(time.Millisecond),
			workerpool.Resources(resources.PerWorker(
				func(w resources.Worker) (*conn, func(), error) {
					return &conn{gen: w.Generation}, func() { mu.Lock(); closes = append(closes, w.Generation); mu.Unlock() }, nil
				},
				resources.Check(func(_ context.Context, c *conn) error {
					mu.Lock()
					defer mu.Unlock()
					checks++
					if c.gen == 0 {
						return fmt.Errorf("ping: %w", errA15Check)
					}
					return nil
				}),
			)),
			workerpool.Events(func(e workerpool.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
		),
		fx.Populate(&pool),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx := a15ctx(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // idle for longer than CheckIdle
	var gen = -1
	if err := pool.Do(ctx, func(_ context.Context, c *conn) error { gen = c.gen; return nil }); err != nil {
		t.Fatal(err)
	}
	if gen != 1 {
		t.Errorf("task ran on generation %d; want 1 (rebuilt after the failed check)", gen)
	}
	if s := pool.Stats(); s.Restarts != 1 {
		t.Errorf("Stats.Restarts = %d; want 1", s.Restarts)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var rebuilt []workerpool.WorkerRebuilt
	for _, e := range events {
		if r, ok := e.(workerpool.WorkerRebuilt); ok {
			rebuilt = append(rebuilt, r)
		}
	}
	if len(rebuilt) != 1 || rebuilt[0].Reason != "failed check" || !errors.Is(rebuilt[0].Cause, errA15Check) {
		t.Errorf("WorkerRebuilt events = %+v; want one, reason \"failed check\", cause wrapping the check's error", rebuilt)
	}
	if !slices.Equal(closes, []int{0, 1}) {
		t.Errorf("generations closed = %v; want [0 1]", closes)
	}
	if checks < 1 {
		t.Errorf("the check never ran")
	}
}

// A panicking health check is a failed check, not a crash: the worker
// rebuilds, and the task runs.
func TestAttack15AcceptPanickingCheckIsAFailedCheck(t *testing.T) {
	type conn struct{ gen int }
	var pool *workerpool.Pool[*conn]
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*conn]("checkpanics",
			workerpool.Workers(1),
			workerpool.CheckIdle(time.Millisecond),
			workerpool.ErrorHandler(func(error) {}),
			workerpool.Resources(resources.PerWorker(
				func(w resources.Worker) *conn { return &conn{gen: w.Generation} },
				resources.Check(func(_ context.Context, c *conn) error {
					if c.gen == 0 {
						panic("check exploded")
					}
					return nil
				}),
			)),
		),
		fx.Populate(&pool),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx := a15ctx(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	gen := -1
	err := pool.Do(ctx, func(_ context.Context, c *conn) error { gen = c.gen; return nil })
	if err != nil || gen != 1 {
		t.Errorf("Do = %v on generation %d; want nil on generation 1", err, gen)
	}
	if err := app.Stop(ctx); err != nil {
		t.Error(err)
	}
}

// A per-worker constructor that needs its own pool is a cycle: fx.New says
// so, it neither hangs nor panics.
func TestAttack15AcceptConstructorNeedingItsOwnPoolFailsFxNew(t *testing.T) {
	type selfish struct{}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		app := fx.New(fx.NopLogger,
			workerpool.Provide[*selfish]("ouroboros",
				workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(func(*workerpool.Pool[*selfish]) *selfish { return &selfish{} })),
			),
			fx.Invoke(func(*workerpool.Pool[*selfish]) {}),
		)
		err := app.Err()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if serr := app.Start(ctx); serr == nil {
				_ = app.Stop(ctx)
			}
			done <- errors.New("fx.New accepted a pool whose resource needs the pool itself")
			return
		}
		if !strings.Contains(err.Error(), "ouroboros") && !strings.Contains(err.Error(), "cycle") {
			done <- fmt.Errorf("error names neither the pool nor a cycle: %v", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fx.New hung")
	}
}

// Two Resources options add up: a type declared in each is a duplicate,
// named with both constructors; a cycle through fx.In fields names each type.
func TestAttack15AcceptDuplicateAcrossResourcesOptionsAndCycleThroughIn(t *testing.T) {
	app := fx.New(fx.NopLogger,
		workerpool.Provide[*a15B]("dups",
			workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func() *a15B { return &a15B{} })),
			workerpool.Resources(resources.PerWorker(func() (*a15B, error) { return &a15B{}, nil })),
		),
		fx.Invoke(func(*workerpool.Pool[*a15B]) {}),
	)
	err := app.Err()
	if !errors.Is(err, resources.ErrDuplicate) {
		t.Errorf("err = %v; want ErrDuplicate", err)
	} else {
		if !strings.Contains(err.Error(), "dups") || strings.Count(err.Error(), "attack15_accept_resources_test.go:") < 2 {
			t.Errorf("duplicate error does not name the pool and both constructors: %v", err)
		}
	}

	type inB struct {
		fx.In
		C *a15C
	}
	type inC struct {
		fx.In
		D *a15D `optional:"true"`
	}
	app = fx.New(fx.NopLogger,
		workerpool.Provide[*a15B]("cyc",
			workerpool.Workers(1),
			workerpool.Resources(
				resources.PerWorker(func(in inB) *a15B { return &a15B{} }),
				resources.PerWorker(func(in inC) *a15C { return &a15C{} }),
				resources.PerWorker(func(*a15B) *a15D { return &a15D{} }),
			),
		),
		fx.Invoke(func(*workerpool.Pool[*a15B]) {}),
	)
	err = app.Err()
	if !errors.Is(err, resources.ErrCycle) {
		t.Fatalf("err = %v; want ErrCycle (an optional field is still an edge)", err)
	}
	for _, s := range []string{"cyc", "a15B", "a15C", "a15D"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("cycle error does not name %q: %v", s, err)
		}
	}
}

type a15Closer interface{ Close() error }

type a15ValueCloser struct{ l *a15log }

func (v a15ValueCloser) Close() error { v.l.add("value closed"); return nil }

// An interface type with Close, and a value (non-pointer) type with Close on
// a value receiver, are closed automatically, once per worker.
func TestAttack15AcceptInterfaceAndValueResourcesCloseAutomatically(t *testing.T) {
	l := &a15log{}
	type deps struct {
		fx.In
		C a15Closer
		V a15ValueCloser
	}
	app := fx.New(fx.NopLogger,
		workerpool.Provide[deps]("auto",
			workerpool.Workers(2),
			workerpool.Resources(
				resources.PerWorker(func() (a15Closer, error) { return a15ValueCloser{l: l}, nil }),
				resources.PerWorker(func() a15ValueCloser { return a15ValueCloser{l: l} }),
			),
		),
		fx.Invoke(func(*workerpool.Pool[deps]) {}),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx := a15ctx(t)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(l.get()); n != 4 {
		t.Errorf("%d closes; want 4 (2 resources × 2 workers)", n)
	}
}
