package workerpool

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strconv"

	"github.com/fxpool/fxpool/internal/callsite"
	"github.com/fxpool/fxpool/internal/plan"
	"github.com/fxpool/fxpool/internal/safe"
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
// returns once all are open; if any open fails, or the open's share of the
// start budget runs out, it closes everything that had opened, in reverse
// order, before returning the error, and before the start's deadline. Its
// OnStop hook refuses new tasks, drains or drops the queue, and closes
// every worker's resources in reverse order within nine tenths of the stop
// budget: the package documentation gives the exact split. Like every fx
// value, the pool is built, and so started, only if something in the app
// depends on it.
//
// Two pools that provide one fx value — the same R and no [Named], or
// Named and the same name — make fx.New fail with dig's "already provided
// by" error, which names the call to Provide of each. Give each pool
// [Named] and ask for it with name:"<pool name>", or keep each [Private] to
// an fx.Module of its own.
func Provide[R any](name string, opts ...Option) fx.Option {
	where := "workerpool.Provide"
	if _, file, line, ok := runtime.Caller(1); ok {
		where = fmt.Sprintf("workerpool.Provide at %s:%d", callsite.Short(file), line)
	}
	// dig's errors about the pool's constructors, made with reflect.MakeFunc,
	// name this call: two pools of one type collide naming both.
	pc := callsite.Caller(1)
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
	if err := checkDropped[R](cfg); err != nil {
		return fail(err)
	}
	pl, err := plan.New[R](cfg.decls...)
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
		needs []string // the names of the need fields, in the plan's order
	)
	if cfg.configFrom.f != nil {
		fields = append(fields, reflect.StructField{Name: "Config", Type: cfg.configFrom.t})
	}
	for i, need := range pl.Needs() {
		id := fmt.Sprintf("fxpool: pool %s needs, for %s", name, need.Consumer)
		provider := reflect.MakeFunc(
			reflect.FuncOf([]reflect.Type{need.In}, []reflect.Type{typeNeed}, false),
			func(args []reflect.Value) []reflect.Value {
				return []reflect.Value{reflect.ValueOf(&needValue{args[0]})}
			})
		options = append(options, provide(cfg, callsite.Annotate(pc, provider.Interface(), fx.ResultTags("name:"+strconv.Quote(id)))))
		field := fmt.Sprintf("Need%d", i)
		needs = append(needs, field)
		fields = append(fields, reflect.StructField{
			Name: field,
			Type: typeNeed,
			Tag:  reflect.StructTag("name:" + strconv.Quote(id)),
		})
	}
	errorType := reflect.TypeFor[error]()
	ctor := reflect.MakeFunc(
		reflect.FuncOf([]reflect.Type{reflect.StructOf(fields)}, []reflect.Type{reflect.TypeFor[*Pool[R]](), errorType}, false),
		func(args []reflect.Value) []reflect.Value {
			p, err := build[R](name, where, cfg, pl, args[0], needs)
			if err != nil {
				return []reflect.Value{reflect.Zero(reflect.TypeFor[*Pool[R]]()), reflect.ValueOf(&err).Elem()}
			}
			return []reflect.Value{reflect.ValueOf(p), reflect.Zero(errorType)}
		})
	var anns []fx.Annotation
	if cfg.named {
		anns = append(anns, fx.ResultTags("name:"+strconv.Quote(name)))
	}
	options = append(options, provide(cfg, callsite.Annotate(pc, ctor.Interface(), anns...)))
	return fx.Options(options...)
}

// provide provides target, privately if the pool is Private.
func provide(cfg config, target any) fx.Option {
	if cfg.private {
		return fx.Provide(target, fx.Private)
	}
	return fx.Provide(target)
}

// checkDropped checks that OnDropped, if given, takes tasks of type R.
func checkDropped[R any](cfg config) error {
	if cfg.onDropped == nil {
		return nil
	}
	if _, ok := cfg.onDropped.(func(context.Context, func(context.Context, R) error)); !ok {
		return fmt.Errorf("OnDropped takes tasks of another type: %T, want func(context.Context, func(context.Context, %v) error)", cfg.onDropped, reflect.TypeFor[R]())
	}
	return nil
}

// build makes the pool from the values fx gives its constructor, in, and
// registers its hooks.
func build[R any](name, where string, cfg config, pl *plan.Plan[R], in reflect.Value, needs []string) (*Pool[R], error) {
	var err error
	if cfg.configFrom.f != nil {
		var opts []Option
		if perr := safe.Call(func() { opts = cfg.configFrom.f(in.FieldByName("Config").Interface()) }); perr != nil {
			err = fmt.Errorf("OptionsFrom's func: %w", perr)
		} else {
			cfg, err = cfg.withConfig(opts)
		}
		if err == nil {
			err = checkDropped[R](cfg)
		}
	} else {
		cfg, err = cfg.final()
	}
	if err != nil {
		return nil, fmt.Errorf("workerpool: pool %q (%s): config: %w", name, where, err)
	}
	ext := make([]reflect.Value, len(needs))
	for i, field := range needs {
		ext[i] = in.FieldByName(field).Interface().(*needValue).v
	}
	log, _ := in.FieldByName("Logger").Interface().(*zap.Logger)
	sd, _ := in.FieldByName("Shutdowner").Interface().(fx.Shutdowner)
	p := newPool(name, cfg, pl, ext, log, sd)
	if reg, _ := in.FieldByName("Registry").Interface().(*Registry); reg != nil {
		if err := reg.add(name, p.Stats, p.guardStop, p.stopGuarded); err != nil {
			return nil, fmt.Errorf("workerpool: pool %q (%s): %w", name, where, err)
		}
	}
	h := &poolHooks{onStart: p.start, onStop: p.stop}
	in.FieldByName("Lifecycle").Interface().(fx.Lifecycle).Append(fx.Hook{OnStart: h.start, OnStop: h.stop})
	return p, nil
}

// needValue carries the values one consumer takes from the fx graph.
type needValue struct{ v reflect.Value }

var typeNeed = reflect.TypeFor[*needValue]()

// poolHooks are a pool's fx hooks. They are methods of a plain type so that
// fx's log names them: workerpool.(*poolHooks).start and .stop.
type poolHooks struct {
	onStart, onStop func(context.Context) error
}

func (h *poolHooks) start(ctx context.Context) error { return h.onStart(ctx) }
func (h *poolHooks) stop(ctx context.Context) error  { return h.onStop(ctx) }
