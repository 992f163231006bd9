package resources

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxpool/fxpool/internal/decl"
)

// ErrBroken marks a task error that makes its worker rebuild its resources:
// a task that returns an error wrapping ErrBroken tells the pool that the
// worker's resources can no longer be trusted. The worker closes them, in
// reverse order, and opens fresh ones before its next task.
var ErrBroken = errors.New("resources: broken")

// Errors that make fx.New fail, through workerpool.Provide, wrapped with
// the names of the pool and the culprits.
var (
	// ErrInvalidConstructor: a declaration is not a usable constructor.
	ErrInvalidConstructor = errors.New("resources: invalid constructor")
	// ErrDuplicate: two constructors of one pool return the same type.
	ErrDuplicate = errors.New("resources: two constructors of one type")
	// ErrDuplicateName: a name given with [Name] is another resource's of
	// the same pool: events, logs and errors could not tell them apart.
	ErrDuplicateName = errors.New("resources: two resources of one name")
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

// OpenError is the error of a resource that did not open: a pool's start,
// or a worker's rebuild, reports it, naming the resource and its
// constructor. Find it with [errors.As].
type OpenError struct {
	// Resource is the resource's name.
	Resource string
	// Constructor is its constructor's function and file:line.
	Constructor string
	// Err is the constructor's error, or a [*hooks.PanicError].
	Err error
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("open %s (%s): %v", e.Resource, e.Constructor, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// An Option configures a [Declaration].
type Option interface {
	apply(*decl.Ctor)
	String() string
}

// Name names the resource in logs and errors. The default is its type, such
// as "*sql.Conn".
func Name(name string) Option { return nameOption(name) }

type nameOption string

func (o nameOption) apply(c *decl.Ctor) { c.Name = string(o) }
func (o nameOption) String() string     { return fmt.Sprintf("resources.Name(%q)", string(o)) }

// Check gives the resource a health check: a pool that checks idle workers
// (see workerpool.CheckIdle) runs it before handing the resource to a task
// after the worker has been idle, and rebuilds the worker's resources if
// it fails, like Commons Pool's testOnBorrow. T must be the type the
// constructor returns.
func Check[T any](check func(context.Context, T) error) Option { return checkOption[T]{check} }

type checkOption[T any] struct {
	f func(context.Context, T) error
}

func (o checkOption[T]) apply(c *decl.Ctor) { c.Check = reflect.ValueOf(o.f) }
func (o checkOption[T]) String() string {
	return fmt.Sprintf("resources.Check[%v](...)", reflect.TypeFor[T]())
}

// Declaration is a per-worker resource constructor, made by [PerWorker],
// for workerpool.Resources. The zero Declaration is invalid.
type Declaration struct {
	c   *decl.Ctor
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
	c, err := decl.Analyse(constructor)
	if err != nil {
		return Declaration{err: fmt.Errorf("%w: %w", ErrInvalidConstructor, err)}
	}
	if c.Out == reflect.TypeFor[Worker]() {
		return Declaration{err: fmt.Errorf("%w: %s: resources.Worker is provided by the pool", ErrInvalidConstructor, c.Where)}
	}
	for _, o := range opts {
		if o == nil {
			return Declaration{err: fmt.Errorf("%w: %v: nil option", ErrInvalidConstructor, c)}
		}
		o.apply(c)
	}
	if c.Name == "" {
		return Declaration{err: fmt.Errorf("%w: %v: empty resources.Name", ErrInvalidConstructor, c)}
	}
	if c.Check.IsValid() {
		if want := c.Check.Type().In(1); want != c.Out {
			return Declaration{err: fmt.Errorf("%w: %v: resources.Check takes %v, not %v", ErrInvalidConstructor, c, want, c.Out)}
		}
		if c.Check.IsNil() {
			return Declaration{err: fmt.Errorf("%w: %v: nil resources.Check", ErrInvalidConstructor, c)}
		}
	}
	return Declaration{c: c}
}

// The pool's plan (package internal/plan) reads a Declaration through
// decl.Of: users have no accessor.
func init() {
	decl.Register(func(d any) (*decl.Ctor, error) {
		switch d := d.(Declaration); {
		case d.err != nil:
			return nil, d.err
		case d.c == nil:
			return nil, fmt.Errorf("%w: zero Declaration: use resources.PerWorker", ErrInvalidConstructor)
		default:
			return d.c, nil
		}
	})
}
