package workerpool

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strconv"

	"github.com/fxpool/fxpool/resources"
	"go.uber.org/dig"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Provide declares a pool named name whose tasks receive R, and provides
// *Pool[R] to the fx app. R is an fx.In struct, whose fields are resolved
// per worker, or a single type; a value that no per-worker constructor of
// the pool makes is taken from the fx graph.
//
// Provide analyses the pool when it is called: an invalid option, an
// unusable constructor, two constructors of one type or a cycle make
// fx.New fail, naming the pool and the culprits. So does a value that
// neither the pool nor the fx graph provides, naming the pool and the
// constructor that needs it. Nothing opens before the app starts.
//
// The pool's OnStart hook opens every worker's resources in parallel and
// returns once all are open; if any open fails, or the start context ends
// first, it closes everything that had opened, in reverse order, before
// returning the error. Its OnStop hook refuses new tasks, lets queued tasks
// run, cancels the context of running tasks once half the stop budget is
// gone, and closes every worker's resources in reverse order, finishing
// within three quarters of the budget: the rest is left to the hooks that
// stop after the pool, such as those of the app-scoped resources its
// workers use. Like every fx value, the pool is built, and so started, only
// if something in the app depends on it.
func Provide[R any](name string, opts ...Option) fx.Option {
	where := "workerpool.Provide"
	if _, file, line, ok := runtime.Caller(1); ok {
		where = fmt.Sprintf("workerpool.Provide at %s:%d", shortPath(file), line)
	}
	fail := func(err error) fx.Option {
		return fx.Error(fmt.Errorf("workerpool: pool %q (%s): %w", name, where, err))
	}
	if name == "" {
		return fail(fmt.Errorf("empty pool name"))
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return fail(err)
	}
	if cfg.onDropped != nil {
		if _, ok := cfg.onDropped.(func(func(context.Context, R) error)); !ok {
			return fail(fmt.Errorf("OnDropped takes tasks of another type: %T", cfg.onDropped))
		}
	}
	plan, err := resources.NewPlan[R](cfg.decls...)
	if err != nil {
		return fail(err)
	}

	// Each consumer of fx values gets a provider of its own, named after it,
	// so that fx's "missing type" error names the pool and the constructor.
	var (
		options []fx.Option
		fields  = []reflect.StructField{
			{Name: "In", Type: reflect.TypeFor[dig.In](), Anonymous: true},
			{Name: "Lifecycle", Type: reflect.TypeFor[fx.Lifecycle]()},
			{Name: "Shutdowner", Type: reflect.TypeFor[fx.Shutdowner]()},
			{Name: "Logger", Type: reflect.TypeFor[*zap.Logger](), Tag: `optional:"true"`},
			{Name: "Registry", Type: reflect.TypeFor[*Registry](), Tag: `optional:"true"`},
		}
	)
	if cfg.configFrom.f != nil {
		fields = append(fields, reflect.StructField{Name: "Config", Type: cfg.configFrom.t})
	}
	fixed := len(fields) // fields before the needs
	for i, need := range plan.Needs() {
		id := fmt.Sprintf("fxpool: pool %s needs, for %s", name, need.Consumer)
		provider := reflect.MakeFunc(
			reflect.FuncOf([]reflect.Type{need.In}, []reflect.Type{typeNeed}, false),
			func(args []reflect.Value) []reflect.Value {
				return []reflect.Value{reflect.ValueOf(&needValue{args[0]})}
			})
		options = append(options, fx.Provide(fx.Annotated{Name: id, Target: provider.Interface()}))
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("Need%d", i),
			Type: typeNeed,
			Tag:  reflect.StructTag("name:" + strconv.Quote(id)),
		})
	}
	in := reflect.StructOf(fields)
	ctor := reflect.MakeFunc(
		reflect.FuncOf([]reflect.Type{in}, []reflect.Type{reflect.TypeFor[*Pool[R]](), reflect.TypeFor[error]()}, false),
		func(args []reflect.Value) []reflect.Value {
			in := args[0]
			cfg := cfg
			if cfg.configFrom.f != nil {
				var err error
				cfg, err = cfg.withConfig(cfg.configFrom.f(in.Field(5).Interface()))
				if err != nil {
					err = fmt.Errorf("workerpool: pool %q (%s): config: %w", name, where, err)
					return []reflect.Value{reflect.Zero(reflect.TypeFor[*Pool[R]]()), reflect.ValueOf(&err).Elem()}
				}
			}
			ext := make([]reflect.Value, in.NumField()-fixed)
			for i := range ext {
				ext[i] = in.Field(fixed + i).Interface().(*needValue).v
			}
			p := newPool(name, cfg, plan, ext,
				in.Field(3).Interface().(*zap.Logger),
				in.Field(2).Interface().(fx.Shutdowner))
			in.Field(1).Interface().(fx.Lifecycle).Append(fx.Hook{
				OnStart: func(ctx context.Context) error { return p.start(ctx) },
				OnStop:  func(ctx context.Context) error { return p.stop(ctx) },
			})
			if reg := in.Field(4).Interface().(*Registry); reg != nil {
				reg.add(name, p.Stats)
			}
			return []reflect.Value{reflect.ValueOf(p), reflect.Zero(reflect.TypeFor[error]())}
		})
	if cfg.named {
		options = append(options, fx.Provide(fx.Annotated{Name: name, Target: ctor.Interface()}))
	} else {
		options = append(options, fx.Provide(ctor.Interface()))
	}
	return fx.Options(options...)
}

// needValue carries the values one consumer takes from the fx graph.
type needValue struct{ v reflect.Value }

var typeNeed = reflect.TypeFor[*needValue]()

// shortPath keeps the last two elements of a path.
func shortPath(file string) string {
	n := 0
	for i := len(file) - 1; i >= 0; i-- {
		if file[i] == '/' {
			if n++; n == 2 {
				return file[i+1:]
			}
		}
	}
	return file
}
