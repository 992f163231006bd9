// Package decl analyses a per-worker constructor: what
// resources.PerWorker makes of the function it is given, and what the plan
// of a pool (package internal/plan) reads to call it.
//
// Package resources holds a [*Ctor] in the unexported field of every
// resources.Declaration and, from its init, registers with [Register] the
// one function that reads it; [Of] calls that function. This package cannot
// name resources.Declaration, since resources imports it; the plan can, and
// so users see a Declaration with no accessor.
package decl

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"

	"github.com/fxpool/fxpool/internal/callsite"
	"github.com/fxpool/fxpool/internal/safe"
	"go.uber.org/dig"
	"go.uber.org/fx"
)

// of is set once, by package resources from its init, before any use.
var of func(d any) (*Ctor, error)

// Register sets the function that [Of] calls. Package resources calls it
// from its init, once; nothing else may.
func Register(f func(d any) (*Ctor, error)) { of = f }

// Of returns the analysed constructor that the resources.Declaration d
// holds, or the error that made it invalid.
func Of(d any) (*Ctor, error) { return of(d) }

// Ctor is an analysed constructor. Package resources sets Name and Check
// from its options; nothing changes a Ctor after PerWorker returns it.
type Ctor struct {
	Fn      reflect.Value
	Name    string        // the resource's name in logs and errors
	Where   string        // the function and its file:line
	Out     reflect.Type  // T, the type it makes
	Check   reflect.Value // a func(context.Context, T) error, if any
	WithCtx bool          // the first parameter is a context.Context
	Params  []Param       // the other parameters

	cleanup cleanupKind // the second of three results, if any
	withErr bool        // the last result is an error
	close   cleanupKind // automatic close, when there is no explicit cleanup
}

// String names the resource and where its constructor is defined.
func (c *Ctor) String() string { return c.Name + " made by " + c.Where }

// Param is one parameter of a constructor (or the task parameter R).
type Param struct {
	T      reflect.Type
	Fields []Field // non-nil when T is an fx.In struct
}

// Field is one field of an fx.In parameter.
type Field struct {
	Index    int
	T        reflect.Type
	Tag      reflect.StructTag
	Name     string // the name tag
	Grouped  bool   // a group tag: always from the fx graph
	Optional bool
}

type cleanupKind int

const (
	noCleanup    cleanupKind = iota
	cleanupPlain             // func()
	cleanupErr               // func() error
	cleanupCtx               // func(context.Context) error
)

var (
	typeContext   = reflect.TypeFor[context.Context]()
	typeError     = reflect.TypeFor[error]()
	typePlain     = reflect.TypeFor[func()]()
	typeErrFunc   = reflect.TypeFor[func() error]()
	typeCtxFunc   = reflect.TypeFor[func(context.Context) error]()
	typeCloser    = reflect.TypeFor[interface{ Close() error }]()
	typeCtxCloser = reflect.TypeFor[interface{ Close(context.Context) error }]()
	typeDigIn     = reflect.TypeFor[dig.In]()
	typeLifecycle = reflect.TypeFor[fx.Lifecycle]()
)

// Errors that Analyse and NewParam wrap.
var (
	ErrNotFunc  = errors.New("not a func")
	ErrNoResult = errors.New("returns nothing usable")
	ErrCtxParam = errors.New("context.Context must be the first parameter")
)

const (
	errLifecycle   = "fx.Lifecycle: hooks appended while a pool opens its workers never run; use a cleanup or a Close method"
	errCtxResult   = "a context.Context result can never be received: take the start's context as the first parameter instead"
	errCleanupType = "second result is %v, want func(), func() error or func(context.Context) error"
)

// Analyse checks that fn is a constructor in one of the forms of package
// resources and records how to call it. Its errors name fn and where it is
// defined; the caller wraps them with resources.ErrInvalidConstructor.
func Analyse(fn any) (*Ctor, error) {
	v := reflect.ValueOf(fn)
	if fn == nil || v.Kind() != reflect.Func {
		return nil, fmt.Errorf("%T is %w", fn, ErrNotFunc)
	}
	if v.IsNil() {
		return nil, fmt.Errorf("nil %T", fn)
	}
	t := v.Type()
	c := &Ctor{Fn: v, Where: funcLocation(v)}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{c.Where}, args...)...)
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
			return nil, bad(errCleanupType, t.Out(1))
		}
	default:
		return nil, bad("%w: has %d results, want T, (T, error) or (T, cleanup, error)", ErrNoResult, t.NumOut())
	}
	c.Out = t.Out(0)
	switch {
	case c.Out == typeError:
		return nil, bad("%w: its first result is an error", ErrNoResult)
	case dig.IsOut(c.Out):
		return nil, bad("fx.Out results are not supported")
	case c.Out == typeContext:
		return nil, bad(errCtxResult)
	}
	c.Name = c.Out.String()
	if c.cleanup == noCleanup {
		switch {
		case c.Out.Implements(typeCtxCloser):
			c.close = cleanupCtx
		case c.Out.Implements(typeCloser):
			c.close = cleanupErr
		}
	}

	for i := range t.NumIn() {
		pt := t.In(i)
		if pt == typeContext {
			if i != 0 {
				return nil, bad("%w", ErrCtxParam)
			}
			c.WithCtx = true
			continue
		}
		if pt == typeLifecycle {
			return nil, bad("parameter %d: %s", i, errLifecycle)
		}
		p, err := NewParam(pt)
		if err != nil {
			return nil, bad("parameter %d: %v", i, err)
		}
		c.Params = append(c.Params, p)
	}
	return c, nil
}

// NewParam analyses a parameter type, looking into fx.In structs.
func NewParam(t reflect.Type) (Param, error) {
	if t.Kind() == reflect.Pointer && dig.IsIn(t.Elem()) {
		return Param{}, fmt.Errorf("%v: pass fx.In structs by value", t)
	}
	if !dig.IsIn(t) {
		return Param{T: t}, nil
	}
	p := Param{T: t, Fields: []Field{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type == typeDigIn {
			continue
		}
		if !f.IsExported() {
			return Param{}, fmt.Errorf("%v: field %s is unexported", t, f.Name)
		}
		if f.Type == typeContext {
			return Param{}, fmt.Errorf("%v: field %s: %w", t, f.Name, ErrCtxParam)
		}
		if f.Type == typeLifecycle {
			return Param{}, fmt.Errorf("%v: field %s: %s", t, f.Name, errLifecycle)
		}
		if dig.IsIn(f.Type) {
			return Param{}, fmt.Errorf("%v: field %s: nested fx.In structs are not supported", t, f.Name)
		}
		_, grouped := f.Tag.Lookup("group")
		p.Fields = append(p.Fields, Field{
			Index:    i,
			T:        f.Type,
			Tag:      f.Tag,
			Name:     f.Tag.Get("name"),
			Grouped:  grouped,
			Optional: f.Tag.Get("optional") == "true",
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

// Call runs the constructor with args, turning a panic into an error, and
// returns the value and its cleanup: the explicit one, or the value's Close
// method, or nil if there is nothing to clean up.
func (c *Ctor) Call(args []reflect.Value) (v reflect.Value, cleanup func(context.Context) error, err error) {
	defer func() {
		if perr := safe.Recovered(recover()); perr != nil {
			v, cleanup, err = reflect.Value{}, nil, perr
		}
	}()
	out := c.Fn.Call(args)
	if c.withErr {
		if e := out[len(out)-1]; !e.IsNil() {
			return reflect.Value{}, nil, e.Interface().(error)
		}
	}
	v = out[0]
	if c.cleanup != noCleanup {
		return v, adapt(c.cleanup, out[1]), nil
	}
	return v, c.CloseOf(v.Interface()), nil
}

// CloseOf returns the cleanup that closes v, a value made by c's function,
// when c has no cleanup result of its own: v's Close method, or nil if v
// has none or is nil.
//
// Nil is judged on v's dynamic value, v as an any: a nil interface and an
// interface holding a nil pointer are nil, like a nil pointer, whichever
// path (direct or reflective) called the constructor.
func (c *Ctor) CloseOf(v any) func(context.Context) error {
	if c.cleanup != noCleanup || c.close == noCleanup || IsNilValue(v) {
		return nil
	}
	return closerOf(c.close, v)
}

// IsNilValue reports whether v, a constructor's result as an any, is nil:
// a nil interface (v == nil), or a nil pointer, map, func, channel or
// slice. Such a value has nothing to close.
func IsNilValue(v any) bool {
	return v == nil || isNil(reflect.ValueOf(v))
}

// adapt turns a cleanup func value of the given kind into a
// func(context.Context) error. A nil func gives nil: nothing to clean up.
func adapt(kind cleanupKind, fn reflect.Value) func(context.Context) error {
	if isNil(fn) {
		return nil
	}
	switch kind {
	case cleanupPlain:
		f := fn.Convert(typePlain).Interface().(func())
		return func(context.Context) error { f(); return nil }
	case cleanupErr:
		f := fn.Convert(typeErrFunc).Interface().(func() error)
		return func(context.Context) error { return f() }
	default:
		return fn.Convert(typeCtxFunc).Interface().(func(context.Context) error)
	}
}

// closerOf returns the Close method of a value that has one, of the kind
// that Analyse found. v must not be nil (see CloseOf).
func closerOf(kind cleanupKind, v any) func(context.Context) error {
	if kind == cleanupCtx {
		return v.(interface{ Close(context.Context) error }).Close
	}
	closer := v.(interface{ Close() error })
	return func(context.Context) error { return closer.Close() }
}

func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice:
		return v.IsNil()
	}
	return false
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
