// Package plan is the machinery that package workerpool opens and closes a
// worker's resources with; users never call it.
//
// A [Plan] is the analysed dependency graph of one pool's
// resources.Declarations for its task parameter R. [New] builds it once,
// when fx.New runs, and reports there a constructor it cannot use
// (resources.ErrInvalidConstructor), two constructors of one type
// (resources.ErrDuplicate) or a cycle (resources.ErrCycle).
//
// Each worker opens its own [Scope] with [Plan.Open]: only the resources
// its task parameter needs, each after those it depends on. [Scope.Close]
// and [Scope.Unwind] close them in exactly the reverse order, so a resource
// closes only after every resource of its worker that depends on it. A
// failed open closes what had opened before returning. Panics in
// constructors and cleanups become errors that name the resource.
package plan

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/internal/decl"
	"github.com/fxpool/fxpool/internal/safe"
	"github.com/fxpool/fxpool/internal/stack"
	"github.com/fxpool/fxpool/resources"
	"go.uber.org/dig"
)

var (
	typeContext = reflect.TypeFor[context.Context]()
	typeWorker  = reflect.TypeFor[resources.Worker]()
	typeDigIn   = reflect.TypeFor[dig.In]()
)

// Plan is the analysed dependency graph of one pool's per-worker resources,
// for the task parameter R: what each worker opens, in which order, and what
// it takes from the fx graph. A Plan is immutable and safe for concurrent use.
type Plan[R any] struct {
	ctors []*decl.Ctor
	order []int       // indices into ctors, dependencies first
	args  [][]argSpec // per ctor: how to build each parameter
	r     argSpec     // how to build R
	needs []Need
	// needOf maps a consumer (ctor index, or len(ctors) for R) to its index
	// in needs, or -1.
	needOf  []int
	observe func(Event)
	// direct calls the only constructor, which makes R from nothing but
	// the context and the worker, without reflection: see directOf.
	direct directCall[R]
}

// Event tells an observer that one resource of one worker opened or
// closed, how long it took, and with what error.
type Event struct {
	// Resource is the resource's name.
	Resource string
	// Worker is the worker it belongs to.
	Worker resources.Worker
	// Closed is false for an open, true for a close.
	Closed bool
	// Took is how long the constructor or the cleanup ran.
	Took time.Duration
	// Err is the open's or the close's error, if any.
	Err error
}

// Observe returns a copy of the plan that tells f of every open and close
// of a resource, on the goroutine that opens or closes it.
func (p *Plan[R]) Observe(f func(Event)) *Plan[R] {
	q := *p
	q.observe = f
	return &q
}

// Need is what one consumer — a per-worker constructor or the task
// parameter — takes from the fx graph.
type Need struct {
	// Consumer names the resource and its constructor (function and
	// file:line), or the task parameter.
	Consumer string
	// In is an fx.In struct type with one field for each value the consumer
	// takes from the fx graph, tags included. [Plan.Open] wants one value of
	// each In, in the order of [Plan.Needs].
	In reflect.Type
}

// argSpec tells how to build one parameter.
type argSpec struct {
	t      reflect.Type
	src    source      // for a plain parameter
	fields []fieldSpec // for an fx.In struct
	isCtx  bool
}

type fieldSpec struct {
	index int
	src   source
}

type sourceKind int

const (
	fromWorker   sourceKind = iota // the worker's own resource
	fromIdentity                   // the Worker value
	fromFx                         // the fx graph
)

type source struct {
	kind sourceKind
	idx  int // ctor index, or field index in the consumer's Need.In
}

// New analyses the declarations for the task parameter R: R is either an
// fx.In struct, each field resolved per worker, or a single type. It
// reports invalid declarations, two constructors of one type and cycles,
// naming the culprits. It opens nothing.
func New[R any](decls ...resources.Declaration) (*Plan[R], error) {
	p := &Plan[R]{}
	var errs []error
	byType := make(map[reflect.Type]int)
	byName := make(map[string]int)
	for _, d := range decls {
		c, err := decl.Of(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if i, dup := byType[c.Out]; dup {
			errs = append(errs, fmt.Errorf("%w %v: %v and %v", resources.ErrDuplicate, c.Out, p.ctors[i].Where, c.Where))
			continue
		}
		// Two types that print alike (*rand.Rand of math/rand and of
		// math/rand/v2) keep their default names: a name given is unique.
		if i, dup := byName[c.Name]; dup && (c.Name != c.Out.String() || p.ctors[i].Name != p.ctors[i].Out.String()) {
			errs = append(errs, fmt.Errorf("%w %q: %v (%v) and %v (%v); give each its own resources.Name",
				resources.ErrDuplicateName, c.Name, p.ctors[i].Out, p.ctors[i].Where, c.Out, c.Where))
			continue
		}
		byType[c.Out] = len(p.ctors)
		byName[c.Name] = len(p.ctors)
		p.ctors = append(p.ctors, c)
	}
	rt := reflect.TypeFor[R]()
	rp, err := decl.NewParam(rt)
	if err == nil && rt == typeContext {
		err = decl.ErrCtxParam
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: task parameter %v: %w", resources.ErrInvalidConstructor, rt, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Resolve every parameter: per worker, the Worker, or the fx graph.
	n := len(p.ctors)
	p.args = make([][]argSpec, n)
	p.needOf = make([]int, n+1)
	for i, c := range p.ctors {
		p.args[i] = p.resolve(i, c.String(), c.WithCtx, c.Params, byType)
	}
	rargs := p.resolve(n, "task parameter "+rt.String(), false, []decl.Param{rp}, byType)
	p.r = rargs[0]

	if err := p.sort(); err != nil {
		return nil, err
	}
	if p.simple() {
		p.direct = directOf[R](p.ctors[0].Fn.Interface())
	}
	return p, nil
}

// simple reports whether the plan is one constructor that makes R itself
// from nothing but the context and the worker: the plan of most pools,
// which directOf may call without reflection.
func (p *Plan[R]) simple() bool {
	if len(p.ctors) != 1 || p.ctors[0].Out != reflect.TypeFor[R]() {
		return false
	}
	if p.r.isCtx || p.r.fields != nil || p.r.src.kind != fromWorker {
		return false
	}
	for _, a := range p.args[0] {
		if !a.isCtx && (a.fields != nil || a.src.kind != fromIdentity) {
			return false
		}
	}
	return true
}

// resolve builds the argSpecs of one consumer and records its Need.
func (p *Plan[R]) resolve(consumer int, name string, withCtx bool, params []decl.Param, byType map[reflect.Type]int) []argSpec {
	var (
		specs []argSpec
		ext   []reflect.StructField
	)
	from := func(t reflect.Type, name string, grouped bool, tag reflect.StructTag) source {
		switch {
		case name != "" || grouped:
		case t == typeWorker:
			return source{kind: fromIdentity}
		default:
			if i, ok := byType[t]; ok {
				return source{kind: fromWorker, idx: i}
			}
		}
		ext = append(ext, reflect.StructField{
			Name: fmt.Sprintf("F%d", len(ext)),
			Type: t,
			Tag:  tag,
		})
		return source{kind: fromFx, idx: len(ext)} // field 0 is the embedded fx.In
	}
	if withCtx {
		specs = append(specs, argSpec{t: typeContext, isCtx: true})
	}
	for _, prm := range params {
		spec := argSpec{t: prm.T}
		if prm.Fields == nil {
			spec.src = from(prm.T, "", false, "")
		} else {
			spec.fields = make([]fieldSpec, len(prm.Fields))
			for j, f := range prm.Fields {
				spec.fields[j] = fieldSpec{index: f.Index, src: from(f.T, f.Name, f.Grouped, f.Tag)}
			}
		}
		specs = append(specs, spec)
	}
	p.needOf[consumer] = -1
	if len(ext) > 0 {
		in := append([]reflect.StructField{{Name: "In", Type: typeDigIn, Anonymous: true}}, ext...)
		p.needOf[consumer] = len(p.needs)
		p.needs = append(p.needs, Need{Consumer: name, In: reflect.StructOf(in)})
	}
	return specs
}

// deps lists the per-worker constructors that one consumer's specs use.
func deps(specs []argSpec) []int {
	var out []int
	add := func(s source) {
		if s.kind == fromWorker {
			out = append(out, s.idx)
		}
	}
	for _, s := range specs {
		if !s.isCtx && s.fields == nil {
			add(s.src)
		}
		for _, f := range s.fields {
			add(f.src)
		}
	}
	return out
}

// sort finds every cycle among the constructors and orders those that R
// needs, dependencies first.
func (p *Plan[R]) sort() error {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(p.ctors))
	var (
		stack []int
		order []int
		cycle error
	)
	var visit func(i int)
	visit = func(i int) {
		switch color[i] {
		case black:
			return
		case grey:
			start := 0
			for k, j := range stack {
				if j == i {
					start = k
				}
			}
			names := make([]string, 0, len(stack)-start+1)
			for _, j := range stack[start:] {
				names = append(names, p.ctors[j].String())
			}
			names = append(names, p.ctors[i].String())
			if cycle == nil {
				cycle = fmt.Errorf("%w: %s", resources.ErrCycle, strings.Join(names, " -> "))
			}
			return
		}
		color[i] = grey
		stack = append(stack, i)
		for _, d := range deps(p.args[i]) {
			visit(d)
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		order = append(order, i)
	}
	for i := range p.ctors {
		visit(i)
	}
	if cycle != nil {
		return cycle
	}

	// Keep only what R needs, in the order found above.
	needed := make([]bool, len(p.ctors))
	var mark func(i int)
	mark = func(i int) {
		if needed[i] {
			return
		}
		needed[i] = true
		for _, d := range deps(p.args[i]) {
			mark(d)
		}
	}
	for _, d := range deps([]argSpec{p.r}) {
		mark(d)
	}
	for _, i := range order {
		if needed[i] {
			p.order = append(p.order, i)
		}
	}

	// Ask the fx graph only for what the opened constructors and R take,
	// as fx itself asks only for what is used.
	var needs []Need
	for consumer, k := range p.needOf {
		if k < 0 {
			continue
		}
		if consumer < len(p.ctors) && !needed[consumer] {
			p.needOf[consumer] = -1
			continue
		}
		p.needOf[consumer] = len(needs)
		needs = append(needs, p.needs[k])
	}
	p.needs = needs
	return nil
}

// Needs lists what the plan takes from the fx graph, one entry per consumer
// that takes anything: the constructors a worker opens and the task
// parameter. A constructor that R does not need asks for nothing.
func (p *Plan[R]) Needs() []Need { return append([]Need(nil), p.needs...) }

// Resources lists the names of the resources a worker opens, in open order.
func (p *Plan[R]) Resources() []string {
	names := make([]string, len(p.order))
	for k, i := range p.order {
		names[k] = p.ctors[i].Name
	}
	return names
}

// Open opens, for worker w, every resource that R needs, each after those it
// depends on, and returns the worker's scope. ext holds one value of each
// [Need.In] of [Plan.Needs], in order.
//
// Constructors receive ctx. Open blocks until every constructor has returned.
// Once ctx is done, Open calls no further constructor: it rolls back and
// returns an [*resources.OpenError] wrapping ctx's cause.
// If one fails or panics, Open closes every resource it had opened, in
// reverse order, with ctx's values but not its cancellation, and returns an
// [*resources.OpenError] joined with any error of that rollback.
func (p *Plan[R]) Open(ctx context.Context, w resources.Worker, ext []reflect.Value) (*Scope[R], error) {
	return p.OpenWith(ctx, &w, ext, &OpenOptions{})
}

// OpenOptions tunes [Plan.OpenWith]. A pool makes one for all its workers:
// its callbacks are told the [resources.Worker.ID] of the one that opens.
type OpenOptions struct {
	// Begin, if not nil, is called with a resource's name just before its
	// constructor runs: a pool reports with it what a slow open is stuck in.
	// The name is the plan's, never changed: keeping the pointer costs no
	// allocation, and no growth of a worker's first stack in the
	// allocator.
	Begin func(worker int, resource *string)
	// CloseTimeout, if positive, bounds the rollback of a failed open.
	CloseTimeout time.Duration
	// OnCaller runs the rollback of a failed open on the calling goroutine,
	// as [Scope.Unwind] does, rather than on one of its own: for a worker
	// locked to its OS thread, whose resources must close on the thread
	// they opened on. The rollback then returns only once every cleanup
	// has; CloseTimeout is still the deadline of their context.
	OnCaller bool
	// Goexit, if not nil, is called when a constructor calls
	// runtime.Goexit, which no open survives: with the resource and its
	// constructor, once what opened before it has been closed, with the
	// error of that rollback.
	Goexit func(worker int, resource, constructor string, rollback error)
	// GoexitError is the error an observer is told a constructor that
	// called runtime.Goexit opened with; nil is [hooks.ErrGoexit].
	GoexitError error
}

// goexitError returns the error of a constructor's Goexit, for observers.
func (o *OpenOptions) goexitError() error {
	if o.GoexitError != nil {
		return o.GoexitError
	}
	return hooks.ErrGoexit
}

// OpenWith is [Plan.Open] with options. w and o are passed by pointer, and
// neither is kept. A plan with a direct call opens on a frame kept small,
// the rare paths apart, and without a deferred call of its own: a
// goroutine's first stack holds the opens of most pools without growing.
func (p *Plan[R]) OpenWith(ctx context.Context, w *resources.Worker, ext []reflect.Value, o *OpenOptions) (*Scope[R], error) {
	if len(ext) != len(p.needs) {
		return nil, wrongExt(len(ext), len(p.needs))
	}
	if p.direct == nil {
		return p.openGuarded(ctx, w, ext, o)
	}
	c := p.ctors[0]
	if ctx.Err() != nil {
		return nil, gaveUp(ctx, c) // whoever opens has given up: open nothing
	}
	if o.Begin != nil {
		o.Begin(w.ID, &c.Name)
	}
	if p.observe != nil {
		return p.openObserved(ctx, w, o)
	}
	v, cleanup, err := p.direct.call(ctx, w, c, o)
	if err != nil {
		return nil, openFailed(c, err)
	}
	if cleanup == nil {
		cleanup = c.CloseOf(v)
	}
	return newScope(c, v, cleanup)
}

// openGuarded is openReflect, and what a constructor's Goexit leaves open
// closed: see goexited.
func (p *Plan[R]) openGuarded(ctx context.Context, w *resources.Worker, ext []reflect.Value, o *OpenOptions) (*Scope[R], error) {
	at := opening[R]{observe: p.observe}
	if o.Goexit != nil || p.observe != nil {
		defer at.goexited(ctx, w, o) // a no-op unless a constructor called runtime.Goexit
	}
	return at.done(p.openReflect(ctx, w, ext, o, &at))
}

// wrongExt is the error of an open given got external values for want
// needs. Apart, so that its call's arguments are not in OpenWith's frame.
//
//go:noinline
func wrongExt(got, want int) error {
	return fmt.Errorf("resources: Open got %d external values, want %d", got, want)
}

// opening is where an open is: the constructor it calls and the scope of
// what it opened so far, for a constructor that calls runtime.Goexit.
type opening[R any] struct {
	ctor     *decl.Ctor
	began    time.Time // when ctor was called
	scope    *Scope[R]
	returned bool
	observe  func(Event) // the plan's observer, if any
}

// done marks the open over and passes its results on.
func (at *opening[R]) done(s *Scope[R], err error) (*Scope[R], error) {
	at.returned = true
	return s, err
}

// goexited runs, deferred, as a constructor's runtime.Goexit unwinds the
// open: a Goexit cannot be stopped, but what opened before it is closed,
// in reverse order, and the caller is told which constructor it was.
func (at *opening[R]) goexited(ctx context.Context, w *resources.Worker, o *OpenOptions) {
	if at.returned || at.ctor == nil {
		return
	}
	if at.observe != nil { // told, as of a constructor that failed, before the rollback
		at.observe(Event{Resource: at.ctor.Name, Worker: *w, Took: time.Since(at.began), Err: o.goexitError()})
	}
	if o.Goexit == nil {
		return
	}
	var err error
	if at.scope != nil {
		// With OnCaller, on this goroutine, still on the thread a locked
		// worker opened on: a cleanup's own Goexit now would end this
		// deferred call too, and the Goexit be reported as a callback's.
		err = rollbackOf[R](ctx, o)(at.scope)
	}
	o.Goexit(w.ID, at.ctor.Name, at.ctor.Where, err)
}

// rollbackOf returns the rollback of a failed open: it closes what the
// scope opened, with ctx's values but not its cancellation.
func rollbackOf[R any](ctx context.Context, o *OpenOptions) func(*Scope[R]) error {
	timeout, onCaller := o.CloseTimeout, o.OnCaller
	return func(s *Scope[R]) error {
		rctx, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
		if timeout > 0 {
			rctx, cancel = context.WithTimeout(rctx, timeout)
		}
		defer cancel()
		if onCaller {
			return s.Unwind(rctx)
		}
		return s.Close(rctx)
	}
}

// openReflect opens the resources of any plan, calling the constructors
// through reflection.
func (p *Plan[R]) openReflect(ctx context.Context, wp *resources.Worker, ext []reflect.Value, o *OpenOptions, at *opening[R]) (*Scope[R], error) {
	w := *wp
	rollback := rollbackOf[R](ctx, o)
	s := &Scope[R]{}
	at.scope = s
	vals := make([]reflect.Value, len(p.ctors))
	for _, i := range p.order {
		c := p.ctors[i]
		if err := context.Cause(ctx); err != nil {
			// Whoever opens has given up: open nothing more.
			err = &resources.OpenError{Resource: c.Name, Constructor: c.Where, Err: err}
			return nil, errors.Join(err, rollback(s))
		}
		if o.Begin != nil {
			o.Begin(w.ID, &c.Name)
		}
		args := p.build(ctx, w, i, p.args[i], vals, ext)
		began := time.Now()
		at.ctor, at.began = c, began
		v, cleanup, err := c.Call(args)
		if p.observe != nil {
			p.observe(Event{Resource: c.Name, Worker: w, Took: time.Since(began), Err: err})
			if cleanup != nil {
				cleanup = p.observed(c.Name, w, cleanup)
			}
		}
		if err != nil {
			err = &resources.OpenError{Resource: c.Name, Constructor: c.Where, Err: err}
			return nil, errors.Join(err, rollback(s))
		}
		vals[i] = v
		if c.Check.IsValid() {
			s.addCheck(check{name: c.Name, fn: c.Check, v: v})
		}
		if cleanup != nil {
			if err := s.stack.Push(c.Name, cleanup); err != nil {
				return nil, err // unreachable: s is not shared yet
			}
		}
	}
	r := p.build(ctx, w, len(p.ctors), []argSpec{p.r}, vals, ext)[0]
	reflect.ValueOf(&s.value).Elem().Set(r)
	return s, nil
}

// openObserved is OpenWith's direct call with an observer, told of the
// open (also of one that a Goexit ended) and of the cleanup.
func (p *Plan[R]) openObserved(ctx context.Context, wp *resources.Worker, o *OpenOptions) (*Scope[R], error) {
	w := *wp
	c := p.ctors[0]
	began := time.Now()
	returned := false
	defer func() {
		if !returned { // runtime.Goexit: told as a constructor that failed
			p.observe(Event{Resource: c.Name, Worker: w, Took: time.Since(began), Err: o.goexitError()})
		}
	}()
	v, cleanup, err := p.direct.call(ctx, wp, c, o)
	returned = true
	if err == nil && cleanup == nil {
		cleanup = c.CloseOf(v)
	}
	p.observe(Event{Resource: c.Name, Worker: w, Took: time.Since(began), Err: err})
	if err != nil {
		return nil, openFailed(c, err)
	}
	if cleanup != nil {
		cleanup = p.observed(c.Name, w, cleanup)
	}
	return newScope(c, v, cleanup)
}

// newScope makes the scope of the value v that c made, with its cleanup
// (nil if there is nothing to close).
func newScope[R any](c *decl.Ctor, v R, cleanup func(context.Context) error) (*Scope[R], error) {
	s := &Scope[R]{value: v}
	if c.Check.IsValid() {
		s.addCheck(check{name: c.Name, fn: c.Check, v: reflect.ValueOf(&s.value).Elem()})
	}
	if cleanup != nil {
		if err := s.stack.Push(c.Name, cleanup); err != nil {
			return nil, err // unreachable: s is not shared yet
		}
	}
	return s, nil
}

// gaveUp is the error of an open whose context ended before c's
// constructor was called. Joined, as errors of the reflective path are.
func gaveUp(ctx context.Context, c *decl.Ctor) error {
	return errors.Join(&resources.OpenError{Resource: c.Name, Constructor: c.Where, Err: context.Cause(ctx)})
}

// openFailed is the error of c's constructor that failed with err: there
// is nothing to roll back.
func openFailed(c *decl.Ctor, err error) error {
	return errors.Join(&resources.OpenError{Resource: c.Name, Constructor: c.Where, Err: err})
}

// observed wraps a cleanup so that the observer is told when it ran.
func (p *Plan[R]) observed(name string, w resources.Worker, cleanup func(context.Context) error) hooks.Cleanup {
	return func(ctx context.Context) (err error) {
		began := time.Now()
		returned := false
		defer func() {
			// A panic is recovered by the stack, and a Goexit goes on; the
			// observer sees either as an error all the same.
			if perr := safe.Recovered(recover()); perr != nil {
				err = perr
			} else if !returned {
				err = hooks.ErrGoexit
			}
			p.observe(Event{Resource: name, Worker: w, Closed: true, Took: time.Since(began), Err: err})
		}()
		err = cleanup(ctx)
		returned = true
		return err
	}
}

// build makes the arguments of one consumer.
func (p *Plan[R]) build(ctx context.Context, w resources.Worker, consumer int, specs []argSpec, vals, ext []reflect.Value) []reflect.Value {
	var in reflect.Value
	if k := p.needOf[consumer]; k >= 0 {
		in = ext[k]
	}
	get := func(s source) reflect.Value {
		switch s.kind {
		case fromWorker:
			return vals[s.idx]
		case fromIdentity:
			return reflect.ValueOf(w)
		}
		return in.Field(s.idx)
	}
	args := make([]reflect.Value, len(specs))
	for k, spec := range specs {
		switch {
		case spec.isCtx:
			args[k] = reflect.ValueOf(&ctx).Elem()
		case spec.fields == nil:
			args[k] = get(spec.src)
		default:
			v := reflect.New(spec.t).Elem()
			for _, f := range spec.fields {
				v.Field(f.index).Set(get(f.src))
			}
			args[k] = v
		}
	}
	return args
}

// Scope holds one worker's open resources.
type Scope[R any] struct {
	// In open order; nil while there are none, as for most resources. A
	// pointer, not a slice: each idle worker keeps a scope.
	checks *[]check
	value  R
	stack  hooks.Stack
}

// addCheck adds c to the scope's checks.
func (s *Scope[R]) addCheck(c check) {
	if s.checks == nil {
		s.checks = new([]check)
	}
	*s.checks = append(*s.checks, c)
}

// Value returns the task parameter built from the scope's resources. It
// does not block and is safe for concurrent use.
func (s *Scope[R]) Value() R { return s.value }

// Close closes the scope's resources in the reverse of their open order and
// returns their errors joined, each naming its resource. It returns by ctx's
// deadline even if a cleanup hangs; see [hooks.Stack.Close]. A second Close
// is a no-op.
func (s *Scope[R]) Close(ctx context.Context) error { return s.stack.Close(ctx) }

// check is a resource's health check, bound to its value.
type check struct {
	name string
	fn   reflect.Value
	v    reflect.Value
}

// Check runs the health checks of the scope's resources (see
// resources.Check), in
// open order, and returns the first failure, naming its resource. A panic
// is a failure. It blocks while the checks run.
func (s *Scope[R]) Check(ctx context.Context) error {
	if s.checks == nil {
		return nil
	}
	for _, c := range *s.checks {
		if err := c.run(ctx); err != nil {
			return fmt.Errorf("resources: check %s: %w", c.name, err)
		}
	}
	return nil
}

func (c check) run(ctx context.Context) (err error) {
	defer func() {
		if perr := safe.Recovered(recover()); perr != nil {
			err = perr
		}
	}()
	out := c.fn.Call([]reflect.Value{reflect.ValueOf(&ctx).Elem(), c.v})
	if e := out[0]; !e.IsNil() {
		return e.Interface().(error)
	}
	return nil
}

// Unwind closes the scope's resources as Close does, but on the calling
// goroutine and without returning before every cleanup has; see
// [stack.Unwind]. Stuck reports its progress meanwhile.
func (s *Scope[R]) Unwind(ctx context.Context) error { return stack.Unwind(&s.stack, ctx) }

// Stuck reports which cleanup a Close or Unwind in progress is running;
// see [stack.Stuck]. It does not block.
func (s *Scope[R]) Stuck(cause error) error { return stack.Stuck(&s.stack, cause) }
