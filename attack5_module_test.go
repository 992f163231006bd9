package fxpool_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type (
	M5Res  struct{ closed *atomic.Int32 }
	M5Deps struct {
		fx.In
		R *M5Res
	}
	M5Other struct{}
)

func (r *M5Res) Close() error { r.closed.Add(1); return nil }

func m5res(closed *atomic.Int32) workerpool.Option {
	return workerpool.Resources(resources.PerWorker(func() *M5Res { return &M5Res{closed: closed} }))
}

func m5run(t *testing.T, app *fx.App) {
	t.Helper()
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// "Pools work without it" (fxpool.Module); "Registry ... Names returns the
// names of the registered pools, sorted"; "Like every fx value, the pool is
// built, and so started, only if something in the app depends on it."
func TestAttack5_RegistryListsBuiltPoolsSorted(t *testing.T) {
	var closed atomic.Int32
	var reg *workerpool.Registry
	var opened atomic.Int32
	app := fx.New(fx.NopLogger, fxpool.Module,
		workerpool.Provide[M5Deps]("zeta", workerpool.Named(), workerpool.Workers(2), m5res(&closed)),
		workerpool.Provide[M5Deps]("alpha", workerpool.Named(), workerpool.Workers(1), m5res(&closed)),
		workerpool.Provide[M5Deps]("unused", workerpool.Named(), workerpool.Workers(1),
			workerpool.Resources(resources.PerWorker(func() *M5Res { opened.Add(1); return &M5Res{closed: &closed} }))),
		fx.Invoke(fx.Annotate(func(*workerpool.Pool[M5Deps], *workerpool.Pool[M5Deps]) {},
			fx.ParamTags(`name:"zeta"`, `name:"alpha"`))),
		fx.Populate(&reg),
	)
	m5run(t, app)
	if got := reg.Names(); !slices.Equal(got, []string{"alpha", "zeta"}) {
		t.Errorf("Names = %q, want [alpha zeta]", got)
	}
	st := reg.Stats()
	if len(st) != 2 {
		t.Errorf("Stats has %d pools", len(st))
	}
	if opened.Load() != 0 {
		t.Errorf("a pool nothing depends on opened %d resources", opened.Load())
	}
	if closed.Load() != 3 {
		t.Errorf("closed %d, want 3", closed.Load())
	}
	// the zero Registry is empty and ready for use
	var zero workerpool.Registry
	if len(zero.Names()) != 0 || len(zero.Stats()) != 0 {
		t.Error("zero Registry not empty")
	}
	// without fxpool.Module
	app2 := fx.New(fx.NopLogger,
		workerpool.Provide[M5Deps]("solo", workerpool.Workers(1), m5res(&closed)),
		fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
	m5run(t, app2)
}

// "Two pools that provide one fx value — the same R and no Named, or Named
// and the same name — make fx.New fail with dig's "already provided by"
// error, which names the call to Provide of each."
func TestAttack5_TwoPoolsOfOneValueNameBothProvides(t *testing.T) {
	var closed atomic.Int32
	for _, named := range []bool{false, true} {
		var o []workerpool.Option
		if named {
			o = append(o, workerpool.Named())
		}
		app := fx.New(fx.NopLogger,
			workerpool.Provide[M5Deps]("one", append(o, m5res(&closed))...), // line A
			workerpool.Provide[M5Deps]("one", append(o, m5res(&closed))...), // line B
		)
		err := app.Err()
		if err == nil {
			t.Fatalf("named=%v: fx.New accepted two pools of one value", named)
		}
		if !strings.Contains(err.Error(), "already provided") {
			t.Errorf("named=%v: %v", named, err)
		}
		if n := strings.Count(err.Error(), "attack5_module_test.go:"); n < 2 {
			t.Errorf("named=%v: error names %d Provide calls in this file, want 2: %v", named, n, err)
		}
	}
}

// "Private provides the pool only to the fx.Module it is declared in":
// two private pools of one task type in two modules coexist, each module
// gets its own, and the app outside sees neither.
func TestAttack5_PrivatePoolsInTwoModules(t *testing.T) {
	var closed atomic.Int32
	var got [2]string
	mod := func(i int, name string) fx.Option {
		return fx.Module(name,
			workerpool.Provide[M5Deps](name, workerpool.Private(), workerpool.Workers(1), m5res(&closed)),
			fx.Invoke(func(p *workerpool.Pool[M5Deps]) { got[i] = p.Name() }),
		)
	}
	var reg *workerpool.Registry
	app := fx.New(fx.NopLogger, fxpool.Module, mod(0, "left"), mod(1, "right"), fx.Populate(&reg))
	m5run(t, app)
	if got != [2]string{"left", "right"} {
		t.Errorf("modules got pools %q", got)
	}
	if !slices.Equal(reg.Names(), []string{"left", "right"}) {
		t.Errorf("Registry %q", reg.Names())
	}
	if closed.Load() != 2 {
		t.Errorf("closed %d, want 2", closed.Load())
	}
	// outside: not visible
	app2 := fx.New(fx.NopLogger, mod(0, "left"),
		fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
	if app2.Err() == nil {
		t.Error("a Private pool was visible outside its module")
		ctx := context.Background()
		_ = app2.Start(ctx)
		_ = app2.Stop(ctx)
	}
}

// A private pool in a module whose per-worker constructor needs a value
// private to that module too: "every other parameter is taken once from the
// fx graph" — the module's scope.
func TestAttack5_PrivatePoolSeesItsModulesPrivateValues(t *testing.T) {
	var closed atomic.Int32
	type secret struct{ v string }
	var seen atomic.Value
	app := fx.New(fx.NopLogger,
		fx.Module("m",
			fx.Provide(fx.Private, func() *secret { return &secret{"inside"} }),
			workerpool.Provide[M5Deps]("m", workerpool.Private(), workerpool.Workers(1),
				workerpool.Resources(resources.PerWorker(func(s *secret) *M5Res {
					seen.Store(s.v)
					return &M5Res{closed: &closed}
				}))),
			fx.Invoke(func(*workerpool.Pool[M5Deps]) {}),
		),
	)
	m5run(t, app)
	if seen.Load() != "inside" || closed.Load() != 1 {
		t.Errorf("seen %v closed %d", seen.Load(), closed.Load())
	}
}

// fx.Decorate of a pool's dependency inside a module: the per-worker
// constructor gets the decorated value, as any fx constructor would.
func TestAttack5_DecoratedDependencyReachesTheWorkers(t *testing.T) {
	var closed atomic.Int32
	type cfg struct{ v string }
	var seen atomic.Value
	app := fx.New(fx.NopLogger,
		fx.Supply(&cfg{"plain"}),
		fx.Module("m",
			fx.Decorate(func(c *cfg) *cfg { return &cfg{c.v + "+decorated"} }),
			workerpool.Provide[M5Deps]("m", workerpool.Workers(2),
				workerpool.Resources(resources.PerWorker(func(c *cfg) *M5Res {
					seen.Store(c.v)
					return &M5Res{closed: &closed}
				}))),
			fx.Invoke(func(*workerpool.Pool[M5Deps]) {}),
		),
	)
	m5run(t, app)
	if seen.Load() != "plain+decorated" {
		t.Errorf("per-worker constructor saw %v, want the module's decorated value", seen.Load())
	}
}

// Decorating the pool itself must not make it start or stop twice.
func TestAttack5_DecoratedPoolStartsOnce(t *testing.T) {
	var closed, opened atomic.Int32
	var decorated atomic.Int32
	app := fx.New(fx.NopLogger,
		workerpool.Provide[M5Deps]("d", workerpool.Workers(3),
			workerpool.Resources(resources.PerWorker(func() *M5Res { opened.Add(1); return &M5Res{closed: &closed} }))),
		fx.Decorate(func(p *workerpool.Pool[M5Deps]) *workerpool.Pool[M5Deps] { decorated.Add(1); return p }),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[M5Deps]) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				return p.Do(ctx, func(context.Context, M5Deps) error { return nil })
			}))
		}),
	)
	m5run(t, app)
	if opened.Load() != 3 || closed.Load() != 3 || decorated.Load() != 1 {
		t.Errorf("opened %d closed %d decorated %d", opened.Load(), closed.Load(), decorated.Load())
	}
}

// StopGuard "needs" the Registry of fxpool.Module: without it, fx.New must
// say so rather than StopGuard silently guarding nothing.
func TestAttack5_StopGuardWithoutModuleFailsFxNew(t *testing.T) {
	var closed atomic.Int32
	app := fx.New(fx.NopLogger,
		workerpool.Provide[M5Deps]("g", workerpool.Workers(1), m5res(&closed)),
		fx.Invoke(func(*workerpool.Pool[M5Deps]) {}),
		workerpool.StopGuard(),
	)
	if app.Err() == nil {
		m5run(t, app)
		t.Fatal("StopGuard without fxpool.Module was accepted: it can guard nothing")
	}
	if !strings.Contains(app.Err().Error(), "Registry") {
		t.Errorf("error does not name the missing Registry: %v", app.Err())
	}
}

// "OptionsFrom ... An invalid one fails fx.New, naming the pool and the
// option. f may not return Resources, Named or OptionsFrom." And a C that
// the graph lacks is fx's missing-dependency error naming the pool.
func TestAttack5_OptionsFromMisuse(t *testing.T) {
	type conf struct{ n int }
	var closed atomic.Int32
	cases := map[string]struct {
		f    func(conf) []workerpool.Option
		want []string
	}{
		"workers0":  {func(conf) []workerpool.Option { return []workerpool.Option{workerpool.Workers(0)} }, []string{"of", "Workers(0)"}},
		"resources": {func(conf) []workerpool.Option { return []workerpool.Option{m5res(&closed)} }, []string{"of", "Resources"}},
		"named":     {func(conf) []workerpool.Option { return []workerpool.Option{workerpool.Named()} }, []string{"of", "Named"}},
		"nested": {func(conf) []workerpool.Option {
			return []workerpool.Option{workerpool.OptionsFrom(func(conf) []workerpool.Option { return nil })}
		}, []string{"of", "OptionsFrom"}},
		"nilopt": {func(conf) []workerpool.Option { return []workerpool.Option{nil} }, []string{"of"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				app := fx.New(fx.NopLogger, fx.Supply(conf{2}),
					workerpool.Provide[M5Deps]("of", m5res(&closed), workerpool.OptionsFrom(c.f)),
					fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
				err = app.Err()
				if err == nil {
					m5run(t, app)
				}
			}()
			if err == nil {
				t.Fatalf("fx.New accepted OptionsFrom returning %s", name)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not name %q", err, w)
				}
			}
		})
	}
	// C missing from the graph
	app := fx.New(fx.NopLogger,
		workerpool.Provide[M5Deps]("of", m5res(&closed), workerpool.OptionsFrom(func(conf) []workerpool.Option { return nil })),
		fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
	if app.Err() == nil || !strings.Contains(app.Err().Error(), "conf") {
		t.Errorf("missing config: %v", app.Err())
	}
}

// A nil Option given to Provide: "an invalid one makes fx.New fail, naming
// it", never a panic.
func TestAttack5_NilOptionToProvide(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		app := fx.New(fx.NopLogger,
			workerpool.Provide[M5Deps]("nilopt", nil, workerpool.Workers(1)),
			fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
		err = app.Err()
	}()
	if err == nil {
		t.Fatal("fx.New accepted a nil Option")
	}
	if !strings.Contains(err.Error(), "nilopt") {
		t.Errorf("err %q does not name the pool", err)
	}
}

// An empty pool name fails fx.New, saying so, never a panic.
func TestAttack5_EmptyPoolNameFailsFxNew(t *testing.T) {
	var closed atomic.Int32
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		app := fx.New(fx.NopLogger, fxpool.Module,
			workerpool.Provide[M5Deps]("", workerpool.Workers(1), m5res(&closed)),
			fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
		err = app.Err()
	}()
	if err == nil || !strings.Contains(err.Error(), "empty pool name") {
		t.Errorf("fx.New = %v, want an error saying the pool name is empty", err)
	}
}

// "A second start after a stop fails with ErrClosed" — through fx: the
// app's second Start returns an error that errors.Is ErrClosed.
func TestAttack5_SecondAppStartIsErrClosed(t *testing.T) {
	var closed atomic.Int32
	app := fx.New(fx.NopLogger,
		workerpool.Provide[M5Deps]("twice", workerpool.Workers(2), m5res(&closed)),
		fx.Invoke(func(*workerpool.Pool[M5Deps]) {}))
	m5run(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := app.Start(ctx)
	_ = app.Stop(ctx)
	if !errors.Is(err, workerpool.ErrClosed) {
		t.Fatalf("second Start = %v, want ErrClosed", err)
	}
	if closed.Load() != 2 {
		t.Errorf("closed %d, want 2 (nothing reopened)", closed.Load())
	}
}
