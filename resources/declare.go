package resources

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"

	"github.com/fxpool/fxpool/internal/callsite"
	"go.uber.org/dig"
	"go.uber.org/fx"
)

// ErrBroken marks a task error that makes its worker rebuild its resources:
// a task that returns an error wrapping ErrBroken tells the pool that the
// worker's resources can no longer be trusted. The worker closes them, in
// reverse order, and opens fresh ones before its next task.
var ErrBroken = errors.New("resources: broken")

// Errors reported by [NewPlan], wrapped with the names of the culprits.
var (
	// ErrInvalidConstructor: a declaration is not a usable constructor.
	ErrInvalidConstructor = errors.New("resources: invalid constructor")
	// ErrDuplicate: two constructors of one pool return the same type.
	ErrDuplicate = errors.New("resources: two constructors of one type")
	// ErrCycle: per-worker constructors depend on each other in a circle.
	ErrCycle = errors.New("resources: dependency cycle")
)

// Worker identifies the worker a resource is opened for. A constructor or a
// task parameter that asks for a Worker receives its own.
type Worker struct {
	// Pool is the name of the pool.
	Pool string
	// ID is the worker's number in its pool, from 0.
	ID int
	// Generation numbers the sets of resources its worker has opened: 0 for
	// the first, one more for each set opened after it (a rebuild, a
	// recycle, or a worker grown again in the slot ID of an elastic pool).
	// A failed attempt to open does not use up a number: its retry opens
	// the same generation.
	Generation int
}

// An Option configures a [Declaration].
type Option interface {
	apply(*ctor)
	String() string
}

// Name names the resource in logs and errors. The default is its type, such
// as "*sql.Conn".
func Name(name string) Option { return nameOption(name) }

type nameOption string

func (o nameOption) apply(c *ctor)  { c.name = string(o) }
func (o nameOption) String() string { return fmt.Sprintf("resources.Name(%q)", string(o)) }

// Check gives the resource a health check: a pool that checks idle workers
// (see workerpool.CheckIdle) runs it before handing the resource to a task
// after the worker has been idle, and rebuilds the worker's resources if
// it fails, like Commons Pool's testOnBorrow. T must be the type the
// constructor returns.
func Check[T any](check func(context.Context, T) error) Option { return checkOption[T]{check} }

type checkOption[T any] struct {
	f func(context.Context, T) error
}

func (o checkOption[T]) apply(c *ctor) { c.check = reflect.ValueOf(o.f) }
func (o checkOption[T]) String() string {
	return fmt.Sprintf("resources.Check[%v](...)", reflect.TypeFor[T]())
}

// Declaration is a per-worker resource constructor, made by [PerWorker].
// The zero Declaration is invalid.
type Declaration struct {
	c   *ctor
	err error
}

// String describes the declaration: its resource and where its constructor
// is defined.
func (d Declaration) String() string {
	if d.c == nil {
		return "resources.PerWorker(<invalid>)"
	}
	return d.c.String()
}

// PerWorker declares a resource that every worker opens for itself. See the
// package documentation for the constructor forms. PerWorker never panics: a
// constructor it cannot use is reported by fx.New, naming it.
func PerWorker(constructor any, opts ...Option) Declaration {
	c, err := analyse(constructor)
	if err != nil {
		return Declaration{err: err}
	}
	for _, o := range opts {
		if o == nil {
			return Declaration{err: fmt.Errorf("%w: %v: nil option", ErrInvalidConstructor, c)}
		}
		o.apply(c)
	}
	if c.name == "" {
		return Declaration{err: fmt.Errorf("%w: %v: empty resources.Name", ErrInvalidConstructor, c)}
	}
	if c.check.IsValid() {
		if want := c.check.Type().In(1); want != c.out {
			return Declaration{err: fmt.Errorf("%w: %v: resources.Check takes %v, not %v", ErrInvalidConstructor, c, want, c.out)}
		}
		if c.check.IsNil() {
			return Declaration{err: fmt.Errorf("%w: %v: nil resources.Check", ErrInvalidConstructor, c)}
		}
	}
	return Declaration{c: c}
}

// ctor is an analysed constructor.
type ctor struct {
	check   reflect.Value // a func(context.Context, T) error, if any
	fn      reflect.Value
	name    string // the resource's name in logs and errors
	where   string // the function and its file:line
	out     reflect.Type
	withCtx bool
	params  []param
	cleanup cleanupKind // the second of three results, if any
	withErr bool        // the last result is an error
	close   cleanupKind // automatic close, when there is no explicit cleanup
}

func (c *ctor) String() string { return c.name + " made by " + c.where }

// param is one parameter of a constructor (or the task parameter R).
type param struct {
	t      reflect.Type
	fields []field // set when t is an fx.In struct
}

type field struct {
	index    int
	t        reflect.Type
	tag      reflect.StructTag
	name     string // the name tag
	grouped  bool   // a group tag: always from the fx graph
	optional bool
}

type cleanupKind int

const (
	noCleanup    cleanupKind = iota
	cleanupPlain             // func()
	cleanupErr               // func() error
	cleanupCtx               // func(context.Context) error
)

var (
	typeContext    = reflect.TypeFor[context.Context]()
	typeError      = reflect.TypeFor[error]()
	typeWorker     = reflect.TypeFor[Worker]()
	typePlain      = reflect.TypeFor[func()]()
	typeErrFunc    = reflect.TypeFor[func() error]()
	typeCtxFunc    = reflect.TypeFor[func(context.Context) error]()
	typeCloser     = reflect.TypeFor[interface{ Close() error }]()
	typeCtxCloser  = reflect.TypeFor[interface{ Close(context.Context) error }]()
	typeDigIn      = reflect.TypeFor[dig.In]()
	typeLifecycle  = reflect.TypeFor[fx.Lifecycle]()
	errNotFunc     = errors.New("not a func")
	errNoResult    = errors.New("returns nothing usable")
	errBadCtxParam = errors.New("context.Context must be the first parameter")
)

func analyse(fn any) (*ctor, error) {
	v := reflect.ValueOf(fn)
	if fn == nil || v.Kind() != reflect.Func {
		return nil, fmt.Errorf("%w: %T is %w", ErrInvalidConstructor, fn, errNotFunc)
	}
	if v.IsNil() {
		return nil, fmt.Errorf("%w: nil %T", ErrInvalidConstructor, fn)
	}
	t := v.Type()
	c := &ctor{fn: v, where: funcLocation(v)}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrInvalidConstructor, c.where}, args...)...)
	}
	if t.IsVariadic() {
		return nil, bad("variadic constructors are not supported")
	}

	switch t.NumOut() {
	case 1:
	case 2:
		if t.Out(1) != typeError {
			return nil, bad("second result is %v, want error", t.Out(1))
		}
		c.withErr = true
	case 3:
		if t.Out(2) != typeError {
			return nil, bad("third result is %v, want error", t.Out(2))
		}
		c.withErr = true
		if c.cleanup = cleanupOf(t.Out(1)); c.cleanup == noCleanup {
			return nil, bad("second result is %v, want func(), func() error or func(context.Context) error", t.Out(1))
		}
	default:
		return nil, bad("%w: has %d results, want T, (T, error) or (T, cleanup, error)", errNoResult, t.NumOut())
	}
	c.out = t.Out(0)
	switch {
	case c.out == typeError:
		return nil, bad("%w: its first result is an error", errNoResult)
	case dig.IsOut(c.out):
		return nil, bad("fx.Out results are not supported")
	case c.out == typeWorker:
		return nil, bad("resources.Worker is provided by the pool")
	case c.out == typeContext:
		return nil, bad("a context.Context result can never be received: take the start's context as the first parameter instead")
	}
	c.name = c.out.String()
	if c.cleanup == noCleanup {
		switch {
		case c.out.Implements(typeCtxCloser):
			c.close = cleanupCtx
		case c.out.Implements(typeCloser):
			c.close = cleanupErr
		}
	}

	for i := range t.NumIn() {
		pt := t.In(i)
		if pt == typeContext {
			if i != 0 {
				return nil, bad("%w", errBadCtxParam)
			}
			c.withCtx = true
			continue
		}
		if pt == typeLifecycle {
			return nil, bad("parameter %d: fx.Lifecycle: hooks appended while a pool opens its workers never run; use a cleanup or a Close method", i)
		}
		p, err := newParam(pt)
		if err != nil {
			return nil, bad("parameter %d: %v", i, err)
		}
		c.params = append(c.params, p)
	}
	return c, nil
}

// newParam analyses a parameter type, looking into fx.In structs.
func newParam(t reflect.Type) (param, error) {
	if t.Kind() == reflect.Pointer && dig.IsIn(t.Elem()) {
		return param{}, fmt.Errorf("%v: pass fx.In structs by value", t)
	}
	if !dig.IsIn(t) {
		return param{t: t}, nil
	}
	p := param{t: t, fields: []field{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type == typeDigIn {
			continue
		}
		if !f.IsExported() {
			return param{}, fmt.Errorf("%v: field %s is unexported", t, f.Name)
		}
		if f.Type == typeContext {
			return param{}, fmt.Errorf("%v: field %s: %w", t, f.Name, errBadCtxParam)
		}
		if f.Type == typeLifecycle {
			return param{}, fmt.Errorf("%v: field %s: fx.Lifecycle: hooks appended while a pool opens its workers never run; use a cleanup or a Close method", t, f.Name)
		}
		if dig.IsIn(f.Type) {
			return param{}, fmt.Errorf("%v: field %s: nested fx.In structs are not supported", t, f.Name)
		}
		_, grouped := f.Tag.Lookup("group")
		p.fields = append(p.fields, field{
			index:    i,
			t:        f.Type,
			tag:      f.Tag,
			name:     f.Tag.Get("name"),
			grouped:  grouped,
			optional: f.Tag.Get("optional") == "true",
		})
	}
	return p, nil
}

func cleanupOf(t reflect.Type) cleanupKind {
	switch {
	case t == typePlain || t.Kind() == reflect.Func && t.ConvertibleTo(typePlain):
		return cleanupPlain
	case t == typeErrFunc || t.Kind() == reflect.Func && t.ConvertibleTo(typeErrFunc):
		return cleanupErr
	case t == typeCtxFunc || t.Kind() == reflect.Func && t.ConvertibleTo(typeCtxFunc):
		return cleanupCtx
	}
	return noCleanup
}

// funcLocation names a function and where it is defined, as
// "main.openConn (cmd/app/main.go:42)".
func funcLocation(v reflect.Value) string {
	f := runtime.FuncForPC(v.Pointer())
	if f == nil {
		return v.Type().String()
	}
	file, line := f.FileLine(f.Entry())
	return fmt.Sprintf("%s (%s:%d)", f.Name(), callsite.Short(file), line)
}
