package plan

import (
	"context"

	"github.com/fxpool/fxpool/internal/decl"
	"github.com/fxpool/fxpool/internal/safe"
	"github.com/fxpool/fxpool/resources"
)

// directCall calls a constructor of R without reflection. Its cleanup is
// the constructor's cleanup result, made a func(context.Context) error, or
// nil if it has none (the caller then looks for a Close method).
type directCall[R any] func(ctx context.Context, w resources.Worker) (R, func(context.Context) error, error)

// call runs d, the constructor c, turning a panic into an error, as
// decl.Ctor.Call does. If c calls runtime.Goexit, o.Goexit is told: there
// is nothing opened before it to close.
func (d directCall[R]) call(ctx context.Context, w *resources.Worker, c *decl.Ctor, o *OpenOptions) (v R, cleanup func(context.Context) error, err error) {
	returned := false
	defer func() {
		if perr := safe.Recovered(recover()); perr != nil {
			var zero R
			v, cleanup, err = zero, nil, perr
		} else if !returned && o.Goexit != nil {
			o.Goexit(w.ID, c.Name, c.Where, nil)
		}
	}()
	v, cleanup, err = d(ctx, *w)
	returned = true
	if err != nil {
		var zero R
		return zero, nil, err
	}
	return v, cleanup, nil
}

// directOf returns a direct call of fn if its signature is one of the
// common forms of a constructor of R from the context and the worker, or
// nil: reflect.Value.Call costs allocations and a deep stack at every open
// of every worker, which a pool of many workers pays at each start.
// Constructors of other forms (named func types, other parameters) are
// called through reflection.
func directOf[R any](fn any) directCall[R] {
	type (
		C = context.Context
		W = resources.Worker
	)
	switch f := fn.(type) {
	case func() R:
		return func(C, W) (R, func(C) error, error) { return f(), nil, nil }
	case func() (R, error):
		return func(C, W) (R, func(C) error, error) { v, err := f(); return v, nil, err }
	case func(W) R:
		return func(_ C, w W) (R, func(C) error, error) { return f(w), nil, nil }
	case func(W) (R, error):
		return func(_ C, w W) (R, func(C) error, error) { v, err := f(w); return v, nil, err }
	case func(C) R:
		return func(ctx C, _ W) (R, func(C) error, error) { return f(ctx), nil, nil }
	case func(C) (R, error):
		return func(ctx C, _ W) (R, func(C) error, error) { v, err := f(ctx); return v, nil, err }
	case func(C, W) R:
		return func(ctx C, w W) (R, func(C) error, error) { return f(ctx, w), nil, nil }
	case func(C, W) (R, error):
		return func(ctx C, w W) (R, func(C) error, error) { v, err := f(ctx, w); return v, nil, err }
	case func(W) (R, func(), error):
		return func(_ C, w W) (R, func(C) error, error) { v, c, err := f(w); return v, plain(c), err }
	case func(W) (R, func() error, error):
		return func(_ C, w W) (R, func(C) error, error) { v, c, err := f(w); return v, errFunc(c), err }
	case func(W) (R, func(C) error, error):
		return func(_ C, w W) (R, func(C) error, error) { return f(w) }
	case func(C, W) (R, func(), error):
		return func(ctx C, w W) (R, func(C) error, error) { v, c, err := f(ctx, w); return v, plain(c), err }
	case func(C, W) (R, func() error, error):
		return func(ctx C, w W) (R, func(C) error, error) { v, c, err := f(ctx, w); return v, errFunc(c), err }
	case func(C, W) (R, func(C) error, error):
		return f
	}
	return nil
}

// plain makes a func() cleanup a func(context.Context) error; nil stays nil.
func plain(f func()) func(context.Context) error {
	if f == nil {
		return nil
	}
	return func(context.Context) error { f(); return nil }
}

// errFunc makes a func() error cleanup a func(context.Context) error; nil
// stays nil.
func errFunc(f func() error) func(context.Context) error {
	if f == nil {
		return nil
	}
	return func(context.Context) error { return f() }
}
