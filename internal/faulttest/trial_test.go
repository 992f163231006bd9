package faulttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
	"go.uber.org/goleak"
)

const poolName = "faulty"

// slack is how long past its deadline a hook or a submitter may take before
// the trial calls it stuck: generous, so that a slow or busy machine never
// fails a trial; only a real hang takes that long.
const slack = 10 * time.Second

// The fault menus.
type (
	openFault    int
	cleanupFault int
	form         int
	cleanupShape int
	taskKind     int
	submitKind   int
)

const (
	openOK           openFault = iota
	openErr                    // returns an error
	openErrWithValue           // returns a value, a cleanup and an error: the pool must ignore both
	openPanic                  // panics
	openBlock                  // blocks until its context ends, then returns its cause
)

const (
	cleanupOK cleanupFault = iota
	cleanupErr
	cleanupPanic
	cleanupHang // until the trial ends, ignoring its context
)

const (
	formT       form = iota // func(...) T
	formTErr                // func(...) (T, error)
	formCleanup             // func(...) (T, cleanup, error)
)

const (
	shapePlain      cleanupShape = iota // func()
	shapeErr                            // func() error
	shapeCtx                            // func(context.Context) error
	shapeNamedPlain                     // stopFunc
	shapeNamedErr                       // closeFunc
	shapeNamedCtx                       // ctxCloseFunc
	shapeNil                            // a nil func: nothing to clean up
)

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

const (
	taskOK taskKind = iota
	taskErr
	taskBroken // returns an error wrapping resources.ErrBroken
	taskPanic
	taskBlock // blocks until its context is cancelled
	taskSlow
)

const (
	viaGo submitKind = iota
	viaTryGo
	viaDo
	viaSubmit
)

// nodeCfg is one per-worker constructor.
type nodeCfg struct {
	variant  int // 0: Tk, no Close; 1: Ek, Close() error; 2: Xk, Close(ctx) error
	form     form
	shape    cleanupShape
	withCtx  bool
	inStruct bool // parameters in an fx.In struct
	usesApp  bool // takes the app-scoped *AppRes from the fx graph
	deps     []int
	openP    float64
	openKind openFault
	cleanP   float64
	cleanKnd cleanupFault
}

func (n nodeCfg) typ(k int) reflect.Type { return menu[k][n.variant] }

// trialCfg is everything a seed decides.
type trialCfg struct {
	seed        uint64
	nodes       []nodeCfg
	rootOnly    bool // the task parameter needs only N0 and what it depends on
	workers     int
	queue       int // -1: default
	startConc   int // 0: default
	maxTasks    int
	maxRestarts int
	maxAge      time.Duration
	policy      workerpool.StopPolicy
	startBudget time.Duration
	stopBudget  time.Duration
	subs        [][]taskSpec
	submitWhen  int // 0: after Start, 1: before, 2: during
	stopAfter   int // accepted tasks before Stop is called
	stopDelay   time.Duration
	invalid     string // "cycle", "duplicate" or ""
	ntasks      int
}

type taskSpec struct {
	id   int
	kind taskKind
	via  submitKind
}

// generate draws a trial from its seed. small shrinks the trial (for
// -short, or to fit CI's time).
func generate(seed uint64) *trialCfg {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := &trialCfg{seed: seed, queue: -1}
	n := 1 + rng.IntN(8)
	c.nodes = make([]nodeCfg, n)
	openFaulty := rng.Float64() < 0.35
	cleanFaulty := rng.Float64() < 0.45
	for k := range c.nodes {
		nd := &c.nodes[k]
		nd.variant = rng.IntN(3)
		nd.form = form(rng.IntN(3))
		nd.shape = cleanupShape(rng.IntN(6))
		if nd.form == formCleanup && nd.variant == 0 && rng.IntN(8) == 0 {
			nd.shape = shapeNil
		}
		nd.withCtx = rng.IntN(2) == 0
		nd.inStruct = rng.IntN(3) == 0
		nd.usesApp = rng.IntN(4) == 0
		for j := k + 1; j < n; j++ { // a DAG: edges go to higher nodes
			if rng.Float64() < 0.4 {
				nd.deps = append(nd.deps, j)
			}
		}
		if openFaulty && rng.IntN(n) < 2 {
			nd.openP = []float64{0.02, 0.1, 0.3, 1}[rng.IntN(4)]
			nd.openKind = openFault(1 + rng.IntN(4))
		}
		if cleanFaulty && rng.IntN(n) < 3 {
			nd.cleanP = []float64{0.1, 0.5, 1}[rng.IntN(3)]
			nd.cleanKnd = []cleanupFault{cleanupErr, cleanupErr, cleanupPanic, cleanupPanic, cleanupHang}[rng.IntN(5)]
		}
	}
	c.rootOnly = rng.IntN(3) == 0
	c.workers = 1 + rng.IntN(16)
	if rng.IntN(10) < 7 {
		c.queue = rng.IntN(33)
	}
	if rng.IntN(10) < 3 {
		c.startConc = 1 + rng.IntN(c.workers)
	}
	if rng.IntN(4) == 0 {
		c.maxTasks = 1 + rng.IntN(10)
	}
	if rng.IntN(5) == 0 {
		c.maxRestarts = 1 + rng.IntN(5)
	}
	if rng.IntN(10) == 0 {
		c.maxAge = time.Duration(1+rng.IntN(5)) * time.Millisecond
	}
	if rng.IntN(10) < 4 {
		c.policy = workerpool.Cancel
	}
	c.startBudget = 30 * time.Second
	if rng.IntN(10) == 0 {
		c.startBudget = time.Duration(rng.IntN(20_000)) * time.Microsecond
	}
	switch x := rng.IntN(100); {
	case x < 10:
		c.stopBudget = 0
	case x < 55:
		c.stopBudget = time.Duration(1+rng.IntN(20)) * time.Millisecond
	case x < 95:
		c.stopBudget = time.Duration(20+rng.IntN(130)) * time.Millisecond
	default:
		c.stopBudget = time.Second
	}
	nsubs := 1 + rng.IntN(4)
	ntasks := rng.IntN(150)
	c.ntasks = ntasks
	c.subs = make([][]taskSpec, nsubs)
	for id := range ntasks {
		s := rng.IntN(nsubs)
		var kind taskKind
		switch x := rng.IntN(100); {
		case x < 60:
			kind = taskOK
		case x < 70:
			kind = taskErr
		case x < 78:
			kind = taskBroken
		case x < 86:
			kind = taskPanic
		case x < 90:
			kind = taskBlock
		default:
			kind = taskSlow
		}
		via := []submitKind{viaGo, viaGo, viaGo, viaTryGo, viaDo, viaDo, viaSubmit, viaSubmit}[rng.IntN(8)]
		c.subs[s] = append(c.subs[s], taskSpec{id: id, kind: kind, via: via})
	}
	c.submitWhen = []int{0, 0, 0, 1, 2}[rng.IntN(5)]
	if ntasks > 0 {
		c.stopAfter = rng.IntN(ntasks + 1)
	}
	c.stopDelay = time.Duration(rng.IntN(2000)) * time.Microsecond
	switch x := rng.IntN(100); {
	case x < 3 && n >= 2:
		c.invalid = "cycle"
	case x < 5:
		c.invalid = "duplicate"
	}
	return c
}

// needed marks the nodes that the task parameter needs.
func (c *trialCfg) needed() []bool {
	need := make([]bool, len(c.nodes))
	if !c.rootOnly {
		for i := range need {
			need[i] = true
		}
		return need
	}
	var mark func(int)
	mark = func(k int) {
		if need[k] {
			return
		}
		need[k] = true
		for _, d := range c.nodes[k].deps {
			mark(d)
		}
	}
	mark(0)
	return need
}

func (c *trialCfg) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed=%#x workers=%d queue=%d startConc=%d maxTasks=%d maxRestarts=%d maxAge=%v policy=%v startBudget=%v stopBudget=%v rootOnly=%v submitWhen=%d stopAfter=%d tasks=%d invalid=%q\n",
		c.seed, c.workers, c.queue, c.startConc, c.maxTasks, c.maxRestarts, c.maxAge, c.policy, c.startBudget, c.stopBudget, c.rootOnly, c.submitWhen, c.stopAfter, c.ntasks, c.invalid)
	for k, n := range c.nodes {
		fmt.Fprintf(&b, "  N%d %v form=%d shape=%d ctx=%v inStruct=%v app=%v deps=%v open=%v@%.2f cleanup=%v@%.2f\n",
			k, n.typ(k), n.form, n.shape, n.withCtx, n.inStruct, n.usesApp, n.deps, n.openKind, n.openP, n.cleanKnd, n.cleanP)
	}
	return b.String()
}

// unit is a deterministic draw in [0, 1) for one decision of one trial, so
// that a replayed seed makes the same decisions for the same worker and
// generation whatever the interleaving.
func unit(seed uint64, parts ...int) float64 {
	h := seed
	for _, p := range parts {
		h ^= uint64(p) + 0x9e3779b97f4a7c15 + h<<6 + h>>2
		h = splitmix(h)
	}
	return float64(h>>11) / (1 << 53)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// AppRes is an app-scoped resource with its own OnStart and OnStop, which
// some per-worker constructors take from the fx graph.
type AppRes struct {
	started   atomic.Bool
	closedSeq atomic.Int64
}

// trial is one run: its configuration, its recorder and its outcome.
type trial struct {
	cfg          *trialCfg
	hangAnywhere bool
	release      chan struct{} // closed once the trial is over: hung cleanups return
	seq          atomic.Int64  // orders opens and closes

	mu         sync.Mutex
	all        []*res
	violations []violation
	stats      counters

	app          *AppRes
	appendingApp bool
	openAfterApp atomic.Int64

	poolStartBegan, poolStopBegan atomic.Bool
	poolStartDone, poolStopDone   chan struct{}
	poolStartErr, stopErr         error
	startErr                      error
	poolStopped                   bool
	lateStart                     bool
	stopDuringStart               bool // fx's Stop began while the pool's OnStart ran
	lastPhase                     time.Time
	callPoolStop                  func(context.Context) error
	fatal                         bool // the trial left goroutines behind

	tasks        []*taskRec
	accepted     atomic.Int64
	droppedCalls atomic.Int64
	notRunGo     atomic.Int64 // ErrClosed given to the ErrorHandler
}

type taskRec struct {
	spec     taskSpec
	accepted int // 0: unknown (Do), 1: yes, 2: no
	result   error
	hasRes   bool
	val      int
	ran      atomic.Int32
	dropped  atomic.Int32
	handled  atomic.Int32
}

func newTrial(cfg *trialCfg, hangAnywhere bool) *trial {
	tr := &trial{
		cfg:           cfg,
		hangAnywhere:  hangAnywhere,
		release:       make(chan struct{}),
		poolStartDone: make(chan struct{}),
		poolStopDone:  make(chan struct{}),
	}
	tr.tasks = make([]*taskRec, cfg.ntasks)
	for _, specs := range cfg.subs {
		for _, s := range specs {
			tr.tasks[s.id] = &taskRec{spec: s}
		}
	}
	return tr
}

// phase adds the time since the last phase to the trial's counters, in
// microseconds.
func (tr *trial) phase(name string) {
	now := time.Now()
	tr.stats.add("µs-"+name, now.Sub(tr.lastPhase).Microseconds())
	tr.lastPhase = now
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
// nil before the recorder calls it a violation: the time between the
// pool's last look at its context and its return, with room for a busy
// machine.
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
				// counted; one that passed well before is a pool that
				// ignored it.
				tr.lateStart = true
				if dl, ok := ctx.Deadline(); ok && time.Since(dl) < lateStartMargin {
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
	var once sync.Once
	tr.callPoolStop = func(ctx context.Context) error {
		tr.poolStopBegan.Store(true)
		err := stop(ctx)
		once.Do(func() {
			tr.stopErr = err
			close(tr.poolStopDone)
		})
		return err
	}
	return tr.callPoolStop
}

// makeCtor builds node k's constructor with reflect.MakeFunc.
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
		}
	}

	fault := openOK
	if nd.openP > 0 && unit(tr.cfg.seed, 1, k, w.ID, w.Generation) < nd.openP {
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
		r.hasCleanup = nd.variant != 0 // closed with its Close method
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

// probeKey marks the context with which OnDropped calls a dropped task, so
// that the task records that it was reported instead of running.
type probeKey struct{}

type taskError struct {
	id     int
	broken bool
	cause  error
}

func (e *taskError) Error() string {
	return fmt.Sprintf("faulttest: task %d failed (broken=%v, cause=%v)", e.id, e.broken, e.cause)
}

func (e *taskError) Is(target error) bool { return e.broken && target == resources.ErrBroken }

type taskPanicValue struct{ id int }

func taskFn[R any](tr *trial, rec *taskRec) func(context.Context, R) error {
	id := rec.spec.id
	return func(ctx context.Context, r R) error {
		if ctx.Value(probeKey{}) != nil {
			if rec.dropped.Add(1) > 1 {
				tr.violate("dropped-twice", "task %d reported as not run twice", id)
			}
			return nil
		}
		if rec.ran.Add(1) > 1 {
			tr.violate("ran-twice", "task %d ran twice", id)
		}
		w, rs := resOf(r)
		for _, x := range rs {
			if x.closes.Load() != 0 {
				tr.violate("use-after-close", "task %d got %v, already closed", id, x)
			}
			if x.openFailed {
				tr.violate("use-of-failed-open", "task %d got %v, whose open failed", id, x)
			}
			if x.worker != w.ID || x.gen != w.Generation {
				tr.violate("foreign-resource", "task %d on worker %d generation %d got %v", id, w.ID, w.Generation, x)
			}
			if x.inUse.Add(1) > 1 {
				tr.violate("shared-resource", "task %d uses %v while another task does", id, x)
			}
		}
		defer func() {
			for _, x := range rs {
				x.inUse.Add(-1)
			}
		}()
		switch rec.spec.kind {
		case taskErr:
			tr.count("task-error")
			return &taskError{id: id}
		case taskBroken:
			tr.count("task-broken")
			return fmt.Errorf("wrapped: %w", &taskError{id: id, broken: true})
		case taskPanic:
			tr.count("task-panic")
			panic(taskPanicValue{id})
		case taskBlock:
			tr.count("task-block")
			<-ctx.Done()
			return &taskError{id: id, cause: context.Cause(ctx)}
		case taskSlow:
			time.Sleep(time.Duration(id%5) * 50 * time.Microsecond)
		}
		return nil
	}
}

// onError is the pool's ErrorHandler.
func (tr *trial) onError(err error) {
	var te *taskError
	var pe *workerpool.PanicError
	switch {
	case errors.As(err, &te):
		tr.tasks[te.id].handled.Add(1)
	case errors.As(err, &pe):
		if v, ok := pe.Value.(taskPanicValue); ok {
			tr.tasks[v.id].handled.Add(1)
			return
		}
		tr.violate("unexpected-error", "ErrorHandler got %v", err)
	case errors.Is(err, workerpool.ErrClosed):
		tr.notRunGo.Add(1)
	default:
		tr.violate("unexpected-error", "ErrorHandler got %v", err)
	}
}

func (tr *trial) options() []workerpool.Option {
	c := tr.cfg
	var decls []resources.Declaration
	for k := range c.nodes {
		decls = append(decls, resources.PerWorker(tr.makeCtor(k, -1), resources.Name(nodeName(k))))
	}
	switch c.invalid {
	case "cycle": // N_last also depends on N0, which depends on it somewhere
		last := len(c.nodes) - 1
		c.nodes[last].deps = append(c.nodes[last].deps, 0)
		if len(c.nodes[0].deps) == 0 || c.nodes[0].deps[len(c.nodes[0].deps)-1] != last {
			c.nodes[0].deps = append(c.nodes[0].deps, last)
		}
		decls = decls[:0]
		for k := range c.nodes {
			decls = append(decls, resources.PerWorker(tr.makeCtor(k, -1), resources.Name(nodeName(k))))
		}
	case "duplicate":
		decls = append(decls, resources.PerWorker(tr.makeCtor(0, 0)))
	}
	opts := []workerpool.Option{
		workerpool.Workers(c.workers),
		workerpool.Resources(decls...),
		workerpool.RestartBackoff(time.Millisecond, 4*time.Millisecond),
		workerpool.OnStop(c.policy),
		workerpool.ErrorHandler(tr.onError),
	}
	if c.queue >= 0 {
		opts = append(opts, workerpool.QueueSize(c.queue))
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

// run runs one trial to its end and checks it. It returns the trial with
// its violations; it never fails a test itself.
func run(cfg *trialCfg, hangAnywhere bool) *trial {
	tr := newTrial(cfg, hangAnywhere)
	if cfg.rootOnly {
		runWith[rootDeps](tr)
	} else {
		runWith[allDeps](tr)
	}
	return tr
}

func runWith[R any](tr *trial) {
	cfg := tr.cfg
	before := goleak.IgnoreCurrent()
	tr.lastPhase = time.Now()
	defer tr.phase("checks")
	var pool *workerpool.Pool[R]
	opts := append(tr.options(), workerpool.OnDropped[R](func(_ context.Context, task func(context.Context, R) error) {
		tr.droppedCalls.Add(1)
		var zero R
		_ = task(context.WithValue(context.Background(), probeKey{}, true), zero)
	}))
	app := fx.New(
		fx.NopLogger,
		fx.Decorate(func(lc fx.Lifecycle) fx.Lifecycle { return spyLifecycle{lc, tr} }),
		fx.Provide(tr.newApp),
		workerpool.Provide[R](poolName, opts...),
		fx.Populate(&pool),
	)
	if cfg.invalid != "" {
		tr.count("invalid-config-" + cfg.invalid)
		want := map[string]string{"cycle": "cycle", "duplicate": "two constructors of one type"}[cfg.invalid]
		if err := app.Err(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), poolName) {
			tr.violate("invalid-config-accepted", "fx.New with a %s: error %v, want one naming the pool and %q", cfg.invalid, err, want)
		}
		if len(tr.all) != 0 {
			tr.violate("opened-on-invalid-config", "fx.New with a %s opened %d resources", cfg.invalid, len(tr.all))
		}
		return
	}
	if err := app.Err(); err != nil {
		tr.violate("fx-new", "fx.New: %v", err)
		return
	}

	var subs sync.WaitGroup
	startSubs := func() {
		for _, specs := range cfg.subs {
			subs.Go(func() { submitter(tr, pool, specs) })
		}
	}
	if cfg.submitWhen == 1 {
		startSubs()
	}
	startCtx, cancelStart := context.WithTimeout(context.Background(), cfg.startBudget)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- app.Start(startCtx) }()
	if cfg.submitWhen == 2 {
		startSubs()
	}
	var startErr error
	select {
	case startErr = <-started:
	case <-time.After(cfg.startBudget + slack):
		tr.violate("start-hang", "app.Start did not return %v after its deadline", slack)
		tr.fatal = true
		close(tr.release)
		return
	}
	if startErr != nil {
		tr.count("start-failed")
		tr.startErr = startErr
	}
	tr.phase("new+start")
	if cfg.submitWhen == 0 {
		startSubs()
	}

	// Stop at a random moment, racing with the submitters.
	allSubmitted := make(chan struct{})
	go func() { subs.Wait(); close(allSubmitted) }()
	wait := time.NewTimer(20 * time.Millisecond)
	for tr.accepted.Load() < int64(cfg.stopAfter) {
		select {
		case <-allSubmitted:
		case <-wait.C:
		case <-time.After(100 * time.Microsecond):
			continue
		}
		break
	}
	wait.Stop()
	time.Sleep(cfg.stopDelay)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.stopBudget)
	defer cancelStop()
	if cfg.stopBudget == 0 {
		// fx would skip the pool's OnStop: call it as fx would had the
		// deadline passed just as it called it.
		tr.count("stop-budget-zero")
		if tr.poolStartBegan.Load() && closed(tr.poolStartDone) && tr.poolStartErr == nil {
			tr.poolStopBegan.Store(true)
			go func() { _ = tr.callPoolStop(stopCtx) }()
		}
	}
	tr.phase("run")
	if tr.poolStartBegan.Load() && !closed(tr.poolStartDone) {
		// fx's Start gave up at its deadline and returned while the pool's
		// OnStart was still running; fx's Stop now closes the app-scoped
		// resources while that OnStart may still be opening workers that
		// use them. No pool can prevent that: fx does not wait for a start
		// hook it abandoned.
		tr.stopDuringStart = true
		tr.count("fx-stop-during-start")
	}
	_ = app.Stop(stopCtx) // fx returns by the deadline; the pool's own hook is watched below
	if !tr.poolStopBegan.Load() && closed(tr.poolStartDone) && tr.poolStartErr == nil {
		// fx skips every OnStop once the stop context has expired, which
		// may happen before it reaches the pool on a busy machine: call
		// it as fx would had the deadline passed just as it called it.
		tr.count("fx-skipped-pool-stop")
		tr.poolStopBegan.Store(true)
		go func() { _ = tr.callPoolStop(stopCtx) }()
	}

	// The pool's own hooks must return by their deadlines, give or take
	// the slack: a start that failed rolls back within as long again.
	released := false
	releaseNow := func() {
		if !released {
			released = true
			select {
			case <-tr.release:
			default:
				close(tr.release)
			}
		}
	}
	if tr.poolStartBegan.Load() {
		select {
		case <-tr.poolStartDone:
		case <-time.After(2*cfg.startBudget + slack):
			tr.violate("pool-start-hang", "the pool's OnStart did not return %v after twice its budget %v", slack, cfg.startBudget)
			releaseNow()
			if !waitFor(tr.poolStartDone, slack) {
				tr.fatal = true
				return
			}
		}
	}
	if !tr.poolStartBegan.Load() && !tr.poolStopBegan.Load() {
		// The start deadline passed before fx reached the pool's OnStart,
		// so fx runs neither hook: tasks submitted before Start would wait
		// for ever (see RELIABILITY.md). Stop the pool as a rollback that
		// included it would, and check the rest.
		tr.count("fx-skipped-pool-hooks")
		tr.poolStopBegan.Store(true)
		go func() { _ = tr.callPoolStop(stopCtx) }()
	}
	if tr.lateStart && !tr.poolStopBegan.Load() {
		// Stop it by hand, as nobody else will, so that the next trials
		// start clean.
		ctx, cancel := context.WithTimeout(context.Background(), slack)
		tr.poolStopBegan.Store(true)
		go func() { _ = tr.callPoolStop(ctx) }()
		defer cancel()
	}
	tr.phase("stop")
	if tr.poolStopBegan.Load() {
		select {
		case <-tr.poolStopDone:
			tr.poolStopped = true
		case <-time.After(cfg.stopBudget + slack):
			tr.violate("pool-stop-hang", "the pool's OnStop did not return %v after its deadline %v", slack, cfg.stopBudget)
			releaseNow()
			if !waitFor(tr.poolStopDone, slack) {
				tr.fatal = true
				return
			}
		}
	}
	releaseNow()
	select {
	case <-allSubmitted:
	case <-time.After(slack):
		tr.violate("submitter-hang", "a submitter was still waiting %v after the pool stopped; app.Start: %v; pool OnStart began %v: %v; pool OnStop began %v: %v; waiting: %s",
			slack, startErr, tr.poolStartBegan.Load(), tr.poolStartErr, tr.poolStopBegan.Load(), tr.stopErr, tr.waiting())
		if !waitFor(allSubmitted, slack) {
			tr.fatal = true // goroutines are left behind: later trials would be meaningless
			return
		}
	}
	tr.phase("submitters")
	if err := goleak.Find(before); err != nil {
		tr.violate("goroutine-leak", "%v", err)
		tr.fatal = true // the rest would race with what is left running
		return
	}
	tr.phase("goleak")
	tr.checkResources()
	tr.checkTasks(pool.Stats())
	if n := tr.openAfterApp.Load(); n > 0 && tr.stopErr == nil && !tr.hangFired() && !tr.stopDuringStart {
		tr.violate("open-without-app-resource", "%d per-worker resources opened while the app-scoped one was not open", n)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waiting describes the tasks whose submitters are still waiting.
func (tr *trial) waiting() string {
	var b strings.Builder
	for _, rec := range tr.tasks {
		if (rec.spec.via == viaDo || rec.spec.via == viaSubmit) && !rec.hasRes && rec.accepted != 2 {
			fmt.Fprintf(&b, "task %d (%v, kind %d, ran %d, dropped %d); ", rec.spec.id, rec.spec.via, rec.spec.kind, rec.ran.Load(), rec.dropped.Load())
		}
	}
	return b.String()
}

// waitFor waits for ch to close, at most d.
func waitFor(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// refused reports whether a submission was turned away: before the pool
// started (it takes no task before its OnStart) or once it began to stop.
func refused(err error) bool {
	return err == workerpool.ErrClosed || err == workerpool.ErrNotStarted
}

func submitter[R any](tr *trial, p *workerpool.Pool[R], specs []taskSpec) {
	ctx := context.Background()
	for _, s := range specs {
		rec := tr.tasks[s.id]
		fn := taskFn[R](tr, rec)
		switch s.via {
		case viaGo:
			err := p.Go(ctx, fn)
			rec.accepted = acceptedIf(err == nil)
			if err != nil && !refused(err) {
				tr.violate("unexpected-submit-error", "Go: %v", err)
			}
		case viaTryGo:
			rec.accepted = acceptedIf(p.TryGo(fn))
		case viaDo:
			rec.result, rec.hasRes = p.Do(ctx, fn), true
		case viaSubmit:
			f, err := workerpool.Submit(ctx, p, func(ctx context.Context, r R) (int, error) {
				return s.id, fn(ctx, r)
			})
			rec.accepted = acceptedIf(err == nil)
			if err != nil {
				if !refused(err) {
					tr.violate("unexpected-submit-error", "Submit: %v", err)
				}
				break
			}
			rec.val, rec.result = f.Wait(ctx)
			rec.hasRes = true
		}
		if rec.accepted == 1 {
			tr.accepted.Add(1)
		}
	}
}

func acceptedIf(ok bool) int {
	if ok {
		return 1
	}
	return 2
}

// checkTasks checks that every accepted task ran or was reported as not
// run, exactly once, and that submitters were told the truth.
func (tr *trial) checkTasks(st workerpool.Stats) {
	var ran, dropped, droppedGo int64
	for _, rec := range tr.tasks {
		id, r, d := rec.spec.id, rec.ran.Load(), rec.dropped.Load()
		ran += int64(r)
		dropped += int64(d)
		if r+d > 1 {
			tr.violate("ran-and-dropped", "task %d ran %d times and was reported not run %d times", id, r, d)
		}
		switch rec.spec.via {
		case viaGo, viaTryGo:
			switch {
			case rec.accepted == 1 && r+d != 1:
				tr.violate("task-lost", "task %d (%v) was accepted, but neither ran nor was reported", id, rec.spec.via)
			case rec.accepted == 2 && r+d != 0:
				tr.violate("refused-task-ran", "task %d (%v) was refused, but ran %d, dropped %d", id, rec.spec.via, r, d)
			}
			droppedGo += int64(d)
			wantHandled := int32(0)
			if r == 1 && rec.spec.kind != taskOK && rec.spec.kind != taskSlow {
				wantHandled = 1
			}
			if h := rec.handled.Load(); h != wantHandled {
				tr.violate("error-handler", "task %d (%v, kind %d) ran %d: ErrorHandler got its error %d times, want %d", id, rec.spec.via, rec.spec.kind, r, h, wantHandled)
			}
		case viaDo, viaSubmit:
			if rec.spec.via == viaSubmit && rec.accepted == 2 {
				if r+d != 0 {
					tr.violate("refused-task-ran", "task %d (Submit) was refused, but ran %d, dropped %d", id, r, d)
				}
				continue
			}
			if !rec.hasRes {
				tr.violate("no-result", "task %d (%v): the submitter got no result", id, rec.spec.via)
				continue
			}
			tr.checkResult(rec, r, d)
		}
	}
	if got := tr.notRunGo.Load(); got != droppedGo {
		tr.violate("not-run-reports", "ErrorHandler got ErrClosed %d times, but %d Go/TryGo tasks were dropped", got, droppedGo)
	}
	if got := tr.droppedCalls.Load(); got != dropped {
		tr.violate("on-dropped", "OnDropped called %d times, %d tasks recorded it", got, dropped)
	}
	if st.Dropped != uint64(dropped) {
		tr.violate("stats-dropped", "Stats.Dropped = %d, OnDropped saw %d", st.Dropped, dropped)
	}
	if st.Done != uint64(ran) {
		tr.violate("stats-done", "Stats.Done = %d, %d tasks ran", st.Done, ran)
	}
	tr.stats.add("tasks-ran", ran)
	tr.stats.add("tasks-reported-not-run", dropped)
	tr.stats.add("tasks-accepted", tr.accepted.Load())
}

func (tr *trial) checkResult(rec *taskRec, r, d int32) {
	id, err := rec.spec.id, rec.result
	var te *taskError
	var pe *workerpool.PanicError
	switch {
	case d == 1:
		if err != workerpool.ErrClosed {
			tr.violate("wrong-result", "task %d (%v) was dropped, its submitter got %v, want ErrClosed", id, rec.spec.via, err)
		}
		return
	case r == 0:
		if !refused(err) {
			tr.violate("task-lost", "task %d (%v) neither ran nor was reported; its submitter got %v", id, rec.spec.via, err)
		}
		return
	}
	switch rec.spec.kind {
	case taskOK, taskSlow:
		if err != nil || rec.spec.via == viaSubmit && rec.val != id {
			tr.violate("wrong-result", "task %d (%v) succeeded, its submitter got %v, %d", id, rec.spec.via, err, rec.val)
		}
	case taskPanic:
		if !errors.As(err, &pe) || pe.Value != (taskPanicValue{id}) {
			tr.violate("wrong-result", "task %d (%v) panicked, its submitter got %v", id, rec.spec.via, err)
		}
	default:
		if !errors.As(err, &te) || te.id != id {
			tr.violate("wrong-result", "task %d (%v) failed, its submitter got %v", id, rec.spec.via, err)
		}
	}
}

func (v submitKind) String() string { return [...]string{"Go", "TryGo", "Do", "Submit"}[v] }
func (f openFault) String() string {
	return [...]string{"ok", "error", "error-with-value", "panic", "block"}[f]
}
func (f cleanupFault) String() string { return [...]string{"ok", "error", "panic", "hang"}[f] }
