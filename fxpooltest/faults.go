package fxpooltest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/fxpool/fxpool/internal/decl"
)

// ErrInjected is the error of every fault made by [Inject]: the error a
// failing open or close returns, the value a panicking one panics with,
// and part of the error of a hang, so that errors.Is(err, ErrInjected)
// finds it through the pool's errors.
var ErrInjected = errors.New("fxpooltest: injected fault")

// Kind is what an injected fault does.
type Kind int

const (
	// Fail returns an error wrapping [ErrInjected].
	Fail Kind = iota + 1
	// Panic panics with an error wrapping [ErrInjected].
	Panic
	// Hang blocks until the context of the open or close ends, then
	// returns an error wrapping [ErrInjected] and the context's cause. The
	// pool may give up waiting at its own deadline first: its error then
	// names the deadline, not the fault.
	Hang
)

// String returns the kind as it is written, such as "fxpooltest.Fail".
func (k Kind) String() string {
	switch k {
	case Fail:
		return "fxpooltest.Fail"
	case Panic:
		return "fxpooltest.Panic"
	case Hang:
		return "fxpooltest.Hang"
	}
	return fmt.Sprintf("fxpooltest.Kind(%d)", int(k))
}

type op int

const (
	opOpen op = iota
	opClose
)

// A Fault is one fault for [Inject]: what happens to the nth open or close
// of a resource. Make it with [OnOpen] or [OnClose].
type Fault struct {
	op   op
	n    int
	kind Kind
}

// OnOpen makes the nth call of the constructor (counting from 1, across
// all workers and generations of the pool) do k instead of opening: the
// user's constructor is not called, so nothing of it needs closing. It
// panics if n < 1 or k is not [Fail], [Panic] or [Hang].
func OnOpen(n int, k Kind) Fault { return newFault(opOpen, n, k) }

// OnClose makes the nth close of the resource (counting from 1, across all
// workers and generations) do k after — or, for [Hang], before — the
// resource's real cleanup, which still runs, so that nothing leaks for
// real: the fault is what the pool sees. It panics if n < 1 or k is not
// [Fail], [Panic] or [Hang].
func OnClose(n int, k Kind) Fault { return newFault(opClose, n, k) }

func newFault(o op, n int, k Kind) Fault {
	f := Fault{o, n, k}
	if n < 1 || k < Fail || k > Hang {
		panic(fmt.Sprintf("fxpooltest: invalid %v", f))
	}
	return f
}

// String returns the fault as it is written, such as
// "fxpooltest.OnOpen(2, fxpooltest.Fail)".
func (f Fault) String() string {
	name := "OnOpen"
	if f.op == opClose {
		name = "OnClose"
	}
	return fmt.Sprintf("fxpooltest.%s(%d, %v)", name, f.n, f.kind)
}

var (
	typeContext   = reflect.TypeFor[context.Context]()
	typeError     = reflect.TypeFor[error]()
	typeCleanup   = reflect.TypeFor[func(context.Context) error]()
	typePlain     = reflect.TypeFor[func()]()
	typeErrFunc   = reflect.TypeFor[func() error]()
	typeCloser    = reflect.TypeFor[interface{ Close() error }]()
	typeCtxCloser = reflect.TypeFor[interface{ Close(context.Context) error }]()
)

// Inject wraps a constructor for resources.PerWorker so that the given
// faults happen to the resource it makes:
//
//	resources.PerWorker(fxpooltest.Inject(openConn, fxpooltest.OnOpen(3, fxpooltest.Fail)))
//
// It accepts every form that PerWorker does and returns a constructor of
// the same resource type, which always takes a leading context.Context and
// returns (T, func(context.Context) error, error). Its cleanup runs the
// original's cleanup, or the Close method that PerWorker would have called;
// a resource with neither gets a cleanup only if a fault is set on its
// close. The resource keeps its default name, but errors name the wrapper's
// function rather than the original, so name it with resources.Name if the
// errors must tell.
//
// Opens and closes are counted per call of Inject, in the order they
// happen; when workers open in parallel, which worker makes the nth call
// is up to the scheduler. When two faults name the same call, the first
// wins. A constructor that PerWorker would reject is returned unchanged,
// for PerWorker to report. The returned constructor is safe for
// concurrent use.
func Inject(constructor any, faults ...Fault) any {
	v := reflect.ValueOf(constructor)
	if constructor == nil || v.Kind() != reflect.Func || v.IsNil() || v.Type().IsVariadic() {
		return constructor
	}
	t := v.Type()
	if t.NumOut() == 0 || t.Out(0) == typeError {
		return constructor
	}
	inj := &injector{fn: v, out: t.Out(0), faults: faults}
	switch t.NumOut() {
	case 1:
	case 2:
		if t.Out(1) != typeError {
			return constructor
		}
	case 3:
		if t.Out(2) != typeError || cleanupKind(t.Out(1)) == nil {
			return constructor
		}
		inj.explicit = true
	default:
		return constructor
	}
	in := []reflect.Type{typeContext}
	for i := range t.NumIn() {
		if i == 0 && t.In(0) == typeContext {
			inj.withCtx = true
			continue
		}
		in = append(in, t.In(i))
	}
	ft := reflect.FuncOf(in, []reflect.Type{inj.out, typeCleanup, typeError}, false)
	return reflect.MakeFunc(ft, inj.call).Interface()
}

// cleanupKind returns the func type a cleanup result converts to, or nil.
func cleanupKind(t reflect.Type) reflect.Type {
	if t.Kind() != reflect.Func {
		return nil
	}
	for _, k := range []reflect.Type{typePlain, typeErrFunc, typeCleanup} {
		if t.ConvertibleTo(k) {
			return k
		}
	}
	return nil
}

type injector struct {
	fn       reflect.Value
	out      reflect.Type
	withCtx  bool // the original takes a leading context.Context
	explicit bool // the original returns a cleanup
	faults   []Fault
	opens    atomic.Int64
	closes   atomic.Int64
}

// fault returns the kind of the fault set on the nth call of o, if any.
func (inj *injector) fault(o op, n int64) Kind {
	for _, f := range inj.faults {
		if f.op == o && int64(f.n) == n {
			return f.kind
		}
	}
	return 0
}

func (inj *injector) hasCloseFaults() bool {
	for _, f := range inj.faults {
		if f.op == opClose {
			return true
		}
	}
	return false
}

func (inj *injector) call(args []reflect.Value) []reflect.Value {
	ctx := args[0].Interface().(context.Context)
	zero := reflect.Zero(inj.out)
	noCleanup := reflect.Zero(typeCleanup)
	result := func(v reflect.Value, cleanup reflect.Value, err error) []reflect.Value {
		e := reflect.Zero(typeError)
		if err != nil {
			e = reflect.ValueOf(&err).Elem()
		}
		return []reflect.Value{v, cleanup, e}
	}

	n := inj.opens.Add(1)
	if k := inj.fault(opOpen, n); k != 0 {
		err := fmt.Errorf("%w: %v on open %d of %v", ErrInjected, k, n, inj.out)
		switch k {
		case Panic:
			panic(err)
		case Hang:
			<-ctx.Done()
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		return result(zero, noCleanup, err)
	}

	if !inj.withCtx {
		args = args[1:]
	}
	out := inj.fn.Call(args)
	v := out[0]
	if len(out) > 1 {
		if e := out[len(out)-1]; !e.IsNil() {
			return result(v, noCleanup, e.Interface().(error))
		}
	}
	var cleanup func(context.Context) error
	switch {
	case inj.explicit:
		cleanup = adapt(out[1])
	case decl.IsNilValue(v.Interface()):
		// Nothing to close, as PerWorker judges it: a nil interface, or
		// one holding a nil pointer, like a nil pointer.
	case inj.out.Implements(typeCtxCloser):
		cleanup = v.Interface().(interface{ Close(context.Context) error }).Close
	case inj.out.Implements(typeCloser):
		closer := v.Interface().(interface{ Close() error })
		cleanup = func(context.Context) error { return closer.Close() }
	}
	if cleanup == nil && !inj.hasCloseFaults() {
		return result(v, noCleanup, nil)
	}
	return result(v, reflect.ValueOf(inj.closer(cleanup)), nil)
}

// closer wraps a resource's cleanup, which may be nil, with the faults set
// on its closes.
func (inj *injector) closer(cleanup func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		n := inj.closes.Add(1)
		k := inj.fault(opClose, n)
		var cause error
		if k == Hang {
			<-ctx.Done()
			cause = context.Cause(ctx)
			ctx = context.WithoutCancel(ctx) // the real cleanup still runs
		}
		var err error
		if cleanup != nil {
			err = cleanup(ctx)
		}
		if k == 0 {
			return err
		}
		injected := fmt.Errorf("%w: %v on close %d of %v", ErrInjected, k, n, inj.out)
		if k == Panic {
			panic(injected)
		}
		return errors.Join(injected, cause, err)
	}
}

// adapt turns a cleanup result into a func(context.Context) error; nil
// stays nil.
func adapt(fn reflect.Value) func(context.Context) error {
	if fn.IsNil() {
		return nil
	}
	switch k := cleanupKind(fn.Type()); k {
	case typePlain:
		f := fn.Convert(k).Interface().(func())
		return func(context.Context) error { f(); return nil }
	case typeErrFunc:
		f := fn.Convert(k).Interface().(func() error)
		return func(context.Context) error { return f() }
	default:
		return fn.Convert(typeCleanup).Interface().(func(context.Context) error)
	}
}
