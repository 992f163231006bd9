package faulttest

// The fx adapter: how a trial becomes an fx app. The per-worker
// constructors are built with reflect.MakeFunc from the drawn nodes, the
// pool's options from the drawn configuration, and a spy fx.Lifecycle
// watches the pool's own OnStart and OnStop, whatever fx does with its
// timeouts.

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

const poolName = "faulty"

type (
	stopFunc     func()
	closeFunc    func() error
	ctxCloseFunc func(context.Context) error
)

var (
	typeContext = reflect.TypeFor[context.Context]()
	typeError   = reflect.TypeFor[error]()
	typeWorker  = reflect.TypeFor[resources.Worker]()
	typeApp     = reflect.TypeFor[*AppRes]()
	typeFxIn    = reflect.TypeFor[fx.In]()
	cleanupType = [...]reflect.Type{
		shapePlain:      reflect.TypeFor[func()](),
		shapeErr:        reflect.TypeFor[func() error](),
		shapeCtx:        reflect.TypeFor[func(context.Context) error](),
		shapeNamedPlain: reflect.TypeFor[stopFunc](),
		shapeNamedErr:   reflect.TypeFor[closeFunc](),
		shapeNamedCtx:   reflect.TypeFor[ctxCloseFunc](),
		shapeNil:        reflect.TypeFor[func() error](),
	}
)

// appOptions are the fx options of a trial's app, which populates pool.
func appOptions[R any](tr *trial, pool **workerpool.Pool[R]) []fx.Option {
	return []fx.Option{
		fx.NopLogger,
		fx.Supply(zap.NewNop()), // the pool logs every injected fault otherwise
		fx.Decorate(func(lc fx.Lifecycle) fx.Lifecycle { return spyLifecycle{lc, tr} }),
		fx.Provide(tr.newApp),
		workerpool.Provide[R](poolName, poolOptions[R](tr)...),
		fx.Populate(pool),
	}
}

// poolOptions are the pool's options, as drawn.
func poolOptions[R any](tr *trial) []workerpool.Option {
	c := tr.cfg
	decls := tr.declarations()
	opts := []workerpool.Option{
		workerpool.Resources(decls...),
		workerpool.RestartBackoff(time.Millisecond, 4*time.Millisecond),
		workerpool.OnStop(c.policy),
		workerpool.ErrorHandler(tr.onError),
		workerpool.OnDropped(onDropped[R](tr)),
		workerpool.Events(func(e workerpool.Event) {
			if s, ok := e.(workerpool.PoolStarted); ok && s.Err == nil {
				tr.startedOK.Store(time.Now().UnixNano())
			}
		}),
	}
	switch c.sizing {
	case sizeFixed:
		opts = append(opts, workerpool.Workers(c.workers))
	case sizeElastic:
		opts = append(opts, workerpool.Elastic(c.elasticMin, c.elasticMax, c.idle))
	}
	if c.queue >= 0 {
		opts = append(opts, workerpool.QueueSize(c.queue))
	}
	if c.checkIdle > 0 {
		opts = append(opts, workerpool.CheckIdle(c.checkIdle))
	}
	if c.startConc > 0 {
		opts = append(opts, workerpool.StartConcurrency(c.startConc))
	}
	if c.maxTasks > 0 {
		opts = append(opts, workerpool.MaxTasksPerWorker(c.maxTasks))
	}
	if c.maxRestarts > 0 {
		opts = append(opts, workerpool.MaxRestarts(c.maxRestarts, time.Second))
	}
	if c.maxAge > 0 {
		opts = append(opts, workerpool.MaxWorkerAge(c.maxAge))
	}
	return opts
}

// declarations are the per-worker constructors, broken as drawn.
func (tr *trial) declarations() []resources.Declaration {
	c := tr.cfg
	if c.invalid == invalidCycle { // N_last also depends on N0, which depends on it somewhere
		last := len(c.nodes) - 1
		c.nodes[last].deps = append(c.nodes[last].deps, 0)
		if len(c.nodes[0].deps) == 0 || c.nodes[0].deps[len(c.nodes[0].deps)-1] != last {
			c.nodes[0].deps = append(c.nodes[0].deps, last)
		}
	}
	var decls []resources.Declaration
	for k, nd := range c.nodes {
		opts := []resources.Option{resources.Name(nodeName(k))}
		if nd.check != checkNone {
			opts = append(opts, checks[k][nd.closer](tr.checkFn(k)))
		}
		decls = append(decls, resources.PerWorker(tr.makeCtor(k, -1), opts...))
	}
	if c.invalid == invalidDup {
		decls = append(decls, resources.PerWorker(tr.makeCtor(0, 0)))
	}
	return decls
}

// AppRes is an app-scoped resource with its own OnStart and OnStop, which
// some per-worker constructors take from the fx graph.
type AppRes struct {
	started   atomic.Bool
	closedSeq atomic.Int64
}

func (tr *trial) newApp(lc fx.Lifecycle) *AppRes {
	a := &AppRes{}
	tr.app = a
	tr.appendingApp = true
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { a.started.Store(true); return nil },
		OnStop:  func(context.Context) error { a.closedSeq.Store(tr.seq.Add(1)); return nil },
	})
	tr.appendingApp = false
	return a
}

// spyLifecycle wraps the pool's hooks to see when they begin and return,
// whatever fx does with its own timeouts.
type spyLifecycle struct {
	fx.Lifecycle
	tr *trial
}

// lateStartMargin is how long after its deadline a start may still return
// nil before the recorder calls it a violation, when the pool's PoolStarted
// event did not come before the deadline: the time between the pool's
// last look at its context and its return, with room for a busy machine.
const lateStartMargin = 5 * time.Millisecond

func (s spyLifecycle) Append(h fx.Hook) {
	tr := s.tr
	if tr.appendingApp {
		s.Lifecycle.Append(h)
		return
	}
	s.Lifecycle.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			tr.poolStartBegan.Store(true)
			err := h.OnStart(ctx)
			if err == nil && ctx.Err() != nil {
				// fx reports a start whose context ended as failed, and may
				// never stop what it started. A hook cannot return at the
				// same instant as it last looks at its context, so a
				// deadline that passed in that last moment is fx's race,
				// counted: the pool told of its success (PoolStarted, just
				// after it last looked) before the deadline, or returned
				// within lateStartMargin of it. A busy machine can hold a
				// goroutine longer than any margin between the two (one
				// soak under load: 1 in 6,962 trials). A deadline that
				// passed well before the pool decided is a pool that
				// ignored it.
				tr.lateStart = true
				dl, ok := ctx.Deadline()
				decided := tr.startedOK.Load()
				if ok && (decided != 0 && time.Unix(0, decided).Before(dl) || time.Since(dl) < lateStartMargin) {
					tr.count("start-ok-at-deadline")
				} else {
					tr.violate("start-ok-after-deadline", "the pool's OnStart returned nil after its context ended (%v)", context.Cause(ctx))
				}
			}
			tr.poolStartErr = err
			close(tr.poolStartDone)
			return err
		},
		OnStop: tr.poolOnStop(h.OnStop),
	})
}

// poolOnStop wraps the pool's OnStop hook: the trial may call it itself (fx
// skips every OnStop once the stop context has expired), and fx may call
// it again; the pool's stop is idempotent.
func (tr *trial) poolOnStop(stop func(context.Context) error) func(context.Context) error {
	tr.callPoolStop = func(ctx context.Context) error {
		tr.poolStopBegan.Store(true)
		err := stop(ctx)
		tr.poolStopReturned(err)
		return err
	}
	return tr.callPoolStop
}

// poolStopReturned records the first return of the pool's stop, through
// its OnStop hook or Pool.Stop.
func (tr *trial) poolStopReturned(err error) {
	tr.stopOnce.Do(func() {
		tr.stopErr = err
		tr.stopReturnSeq.Store(tr.seq.Add(1))
		close(tr.poolStopDone)
	})
}

// onDropped is the pool's OnDropped: it calls the dropped task with a
// probe context (derived from the one OnDropped got), so that the task
// records that it was reported instead of running.
func onDropped[R any](tr *trial) func(context.Context, func(context.Context, R) error) {
	return func(ctx context.Context, task func(context.Context, R) error) {
		tr.droppedCalls.Add(1)
		if ctx == nil {
			tr.violate("on-dropped-nil-context", "OnDropped got a nil context")
			ctx = context.Background()
		}
		var zero R
		_ = task(context.WithValue(ctx, probeKey{}, true), zero)
	}
}

// attempt numbers the opens of node k for one worker and generation: a
// failed open is retried with the same generation, and must be able to
// draw another fate.
func (tr *trial) attempt(k int, w resources.Worker) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	key := [3]int{k, w.ID, w.Generation}
	n := tr.attempts[key]
	tr.attempts[key] = n + 1
	return n
}

// makeCtor builds node k's constructor with reflect.MakeFunc; dupOf >= 0
// makes it return node dupOf's type instead (invalidDup).
func (tr *trial) makeCtor(k int, dupOf int) any {
	nd := tr.cfg.nodes[k]
	out := nd.typ(k)
	if dupOf >= 0 {
		out = tr.cfg.nodes[dupOf].typ(dupOf)
	}
	var params []reflect.Type
	for _, d := range nd.deps {
		params = append(params, tr.cfg.nodes[d].typ(d))
	}
	params = append(params, typeWorker)
	if nd.usesApp {
		params = append(params, typeApp)
	}
	var in []reflect.Type
	if nd.withCtx {
		in = append(in, typeContext)
	}
	if nd.inStruct {
		fields := []reflect.StructField{{Name: "In", Type: typeFxIn, Anonymous: true}}
		for i, p := range params {
			fields = append(fields, reflect.StructField{Name: fmt.Sprintf("P%d", i), Type: p})
		}
		in = append(in, reflect.StructOf(fields))
	} else {
		in = append(in, params...)
	}
	outs := []reflect.Type{out}
	switch nd.form {
	case formTErr:
		outs = append(outs, typeError)
	case formCleanup:
		outs = append(outs, cleanupType[nd.shape], typeError)
	}
	ft := reflect.FuncOf(in, outs, false)
	return reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
		return tr.construct(k, out, nd, args)
	}).Interface()
}

func (tr *trial) construct(k int, out reflect.Type, nd nodeCfg, args []reflect.Value) []reflect.Value {
	var ctx context.Context
	if nd.withCtx {
		ctx = args[0].Interface().(context.Context)
		args = args[1:]
	}
	var vals []reflect.Value
	if nd.inStruct {
		s := args[0]
		for i := 1; i < s.NumField(); i++ {
			vals = append(vals, s.Field(i))
		}
	} else {
		vals = args
	}
	deps := make([]*res, len(nd.deps))
	for i := range nd.deps {
		deps[i] = vals[i].Interface().(holder).get()
	}
	w := vals[len(nd.deps)].Interface().(resources.Worker)
	if nd.usesApp {
		a := vals[len(nd.deps)+1].Interface().(*AppRes)
		if !a.started.Load() || a.closedSeq.Load() != 0 {
			tr.openAfterApp.Add(1)
			tr.mu.Lock()
			tr.openAfterAppBy[w.ID]++
			tr.mu.Unlock()
		}
	}

	fault := openOK
	if nd.openP > 0 && unit(tr.cfg.seed, 1, k, w.ID, w.Generation, tr.attempt(k, w)) < nd.openP {
		fault = nd.openKind
	}
	// What each form can express.
	if nd.form == formT && fault != openOK {
		fault = openPanic
	}
	if fault == openErrWithValue && nd.form != formCleanup {
		fault = openErr
	}
	if fault == openBlock && (ctx == nil || w.Generation == 0 && tr.cfg.startBudget > 50*time.Millisecond) {
		fault = openErr
	}
	errOut := func(err error) []reflect.Value {
		outs := []reflect.Value{reflect.Zero(out)}
		if nd.form == formCleanup {
			outs = append(outs, reflect.Zero(cleanupType[nd.shape]))
		}
		return append(outs, reflect.ValueOf(&err).Elem())
	}
	switch fault {
	case openErr:
		tr.count("open-error")
		return errOut(fmt.Errorf("faulttest: N%d worker %d: injected open error", k, w.ID))
	case openPanic:
		tr.count("open-panic")
		panic(fmt.Sprintf("faulttest: N%d worker %d: injected open panic", k, w.ID))
	case openBlock:
		tr.count("open-block")
		<-ctx.Done()
		return errOut(context.Cause(ctx))
	}

	r := &res{tr: tr, node: k, worker: w.ID, gen: w.Generation, deps: deps}
	if nd.cleanP > 0 && unit(tr.cfg.seed, 2, k, w.ID, w.Generation) < nd.cleanP {
		r.fault = nd.cleanKnd
	}
	switch {
	case fault == openErrWithValue:
		r.openFailed = true
	case nd.form == formCleanup:
		r.hasCleanup = nd.shape != shapeNil
	default:
		r.hasCleanup = nd.closer != closeNone // closed with its Close method
	}
	if (nd.shape == shapePlain || nd.shape == shapeNamedPlain) && nd.form == formCleanup && r.fault == cleanupErr {
		r.fault = cleanupPanic // a func() cannot return an error
	}
	tr.register(r, w)
	// Every menu type is a struct{ *res }: set its only field.
	v := reflect.New(out.Elem())
	*(**res)(v.UnsafePointer()) = r

	outs := []reflect.Value{v}
	if nd.form == formCleanup {
		var fn any
		switch nd.shape {
		case shapePlain:
			fn = func() { _ = r.closeVia(viaCleanup) }
		case shapeNamedPlain:
			fn = stopFunc(func() { _ = r.closeVia(viaCleanup) })
		case shapeErr:
			fn = func() error { return r.closeVia(viaCleanup) }
		case shapeNamedErr:
			fn = closeFunc(func() error { return r.closeVia(viaCleanup) })
		case shapeCtx:
			fn = func(context.Context) error { return r.closeVia(viaCleanup) }
		case shapeNamedCtx:
			fn = ctxCloseFunc(func(context.Context) error { return r.closeVia(viaCleanup) })
		case shapeNil:
			fn = (func() error)(nil)
		}
		outs = append(outs, reflect.ValueOf(fn))
	}
	if nd.form != formT {
		var err error
		if fault == openErrWithValue {
			tr.count("open-error-with-value")
			err = fmt.Errorf("faulttest: N%d worker %d: injected open error after a value", k, w.ID)
		}
		outs = append(outs, reflect.ValueOf(&err).Elem())
	}
	return outs
}

// checkFn is node k's health check, run by CheckIdle on an idle worker's
// open resource, before a task and never during one.
func (tr *trial) checkFn(k int) func(context.Context, *res) error {
	nd := tr.cfg.nodes[k]
	return func(_ context.Context, r *res) error {
		n := int(r.checks.Add(1))
		tr.count("check-run")
		if tr.cfg.checkIdle == 0 {
			tr.violate("check-without-check-idle", "%v checked, but the pool has no CheckIdle", r)
		}
		if r.closes.Load() != 0 {
			tr.violate("check-after-close", "%v checked after it closed", r)
		}
		if r.openFailed {
			tr.violate("check-of-failed-open", "%v checked although its constructor failed", r)
		}
		if u := r.inUse.Load(); u != 0 {
			tr.violate("check-while-in-use", "%v checked while %d tasks use it", r, u)
		}
		if nd.checkP > 0 && unit(tr.cfg.seed, 3, k, r.worker, r.gen, n) < nd.checkP {
			switch nd.check {
			case checkErr:
				tr.count("check-error")
				return fmt.Errorf("faulttest: %v: injected check error", r)
			case checkPanic:
				tr.count("check-panic")
				panic(fmt.Sprintf("faulttest: %v: injected check panic", r))
			}
		}
		return nil
	}
}

// The task parameters: every node, or only N0 and what it needs. Fields
// that no per-worker constructor makes are optional values of the fx graph,
// absent, so nil.
type allDeps struct {
	fx.In
	W  resources.Worker
	T0 *T0 `optional:"true"`
	E0 *E0 `optional:"true"`
	X0 *X0 `optional:"true"`
	T1 *T1 `optional:"true"`
	E1 *E1 `optional:"true"`
	X1 *X1 `optional:"true"`
	T2 *T2 `optional:"true"`
	E2 *E2 `optional:"true"`
	X2 *X2 `optional:"true"`
	T3 *T3 `optional:"true"`
	E3 *E3 `optional:"true"`
	X3 *X3 `optional:"true"`
	T4 *T4 `optional:"true"`
	E4 *E4 `optional:"true"`
	X4 *X4 `optional:"true"`
	T5 *T5 `optional:"true"`
	E5 *E5 `optional:"true"`
	X5 *X5 `optional:"true"`
	T6 *T6 `optional:"true"`
	E6 *E6 `optional:"true"`
	X6 *X6 `optional:"true"`
	T7 *T7 `optional:"true"`
	E7 *E7 `optional:"true"`
	X7 *X7 `optional:"true"`
}

type rootDeps struct {
	fx.In
	W  resources.Worker
	T0 *T0 `optional:"true"`
	E0 *E0 `optional:"true"`
	X0 *X0 `optional:"true"`
}

// resOf returns the worker and the resources a task received.
func resOf(r any) (resources.Worker, []*res) {
	v := reflect.ValueOf(r)
	var (
		w  resources.Worker
		rs []*res
	)
	for i := range v.NumField() {
		f := v.Field(i)
		switch x := f.Interface().(type) {
		case resources.Worker:
			w = x
		case holder:
			if !f.IsNil() {
				rs = append(rs, x.get())
			}
		}
	}
	return w, rs
}
