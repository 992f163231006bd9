package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fxpool/fxpool/resources"
)

// conn is a resource with a Close method, which counts its closes.
type conn struct {
	id     int
	closes *int
}

func (c *conn) Close() error { *c.closes++; return nil }

// TestDirectCallsEveryCommonForm opens and closes a pool's plan for each
// constructor form that directOf calls without reflection, and checks
// that the plan took the direct path and that it behaves as the
// reflective one: the value, the worker it was made for, the cleanup (the
// explicit one, or the Close method when there is none) run exactly once,
// a failed constructor leaving nothing to clean up, and a panic made an
// error.
func TestDirectCallsEveryCommonForm(t *testing.T) {
	type (
		C = context.Context
		W = resources.Worker
	)
	fail := errors.New("refused")
	cases := []struct {
		name     string
		make     func(closes, cleanups *int, err error) any
		identity bool // the value knows its worker
		explicit bool // the constructor returns a cleanup of its own
	}{
		{"func() R", func(cl, _ *int, _ error) any { return func() *conn { return &conn{closes: cl} } }, false, false},
		{"func() (R, error)", func(cl, _ *int, err error) any {
			return func() (*conn, error) { return &conn{closes: cl}, err }
		}, false, false},
		{"func(W) R", func(cl, _ *int, _ error) any { return func(w W) *conn { return &conn{w.ID, cl} } }, true, false},
		{"func(W) (R, error)", func(cl, _ *int, err error) any {
			return func(w W) (*conn, error) { return &conn{w.ID, cl}, err }
		}, true, false},
		{"func(C) R", func(cl, _ *int, _ error) any { return func(C) *conn { return &conn{closes: cl} } }, false, false},
		{"func(C) (R, error)", func(cl, _ *int, err error) any {
			return func(C) (*conn, error) { return &conn{closes: cl}, err }
		}, false, false},
		{"func(C, W) R", func(cl, _ *int, _ error) any { return func(_ C, w W) *conn { return &conn{w.ID, cl} } }, true, false},
		{"func(C, W) (R, error)", func(cl, _ *int, err error) any {
			return func(_ C, w W) (*conn, error) { return &conn{w.ID, cl}, err }
		}, true, false},
		{"func(W) (R, func(), error)", func(cl, cu *int, err error) any {
			return func(w W) (*conn, func(), error) { return &conn{w.ID, cl}, func() { *cu++ }, err }
		}, true, true},
		{"func(W) (R, func() error, error)", func(cl, cu *int, err error) any {
			return func(w W) (*conn, func() error, error) {
				return &conn{w.ID, cl}, func() error { *cu++; return nil }, err
			}
		}, true, true},
		{"func(W) (R, func(C) error, error)", func(cl, cu *int, err error) any {
			return func(w W) (*conn, func(C) error, error) {
				return &conn{w.ID, cl}, func(C) error { *cu++; return nil }, err
			}
		}, true, true},
		{"func(C, W) (R, func(), error)", func(cl, cu *int, err error) any {
			return func(_ C, w W) (*conn, func(), error) { return &conn{w.ID, cl}, func() { *cu++ }, err }
		}, true, true},
		{"func(C, W) (R, func() error, error)", func(cl, cu *int, err error) any {
			return func(_ C, w W) (*conn, func() error, error) {
				return &conn{w.ID, cl}, func() error { *cu++; return nil }, err
			}
		}, true, true},
		{"func(C, W) (R, func(C) error, error)", func(cl, cu *int, err error) any {
			return func(_ C, w W) (*conn, func(C) error, error) {
				return &conn{w.ID, cl}, func(C) error { *cu++; return nil }, err
			}
		}, true, true},
	}
	ctx := context.Background()
	w := resources.Worker{Pool: "p", ID: 7}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var closes, cleanups int
			p, err := New[*conn](resources.PerWorker(c.make(&closes, &cleanups, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if p.direct == nil {
				t.Fatal("the plan calls this form through reflection")
			}
			s, err := p.Open(ctx, w, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.identity && s.Value().id != w.ID {
				t.Errorf("value made for worker %d, want %d", s.Value().id, w.ID)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if c.explicit && (cleanups != 1 || closes != 0) {
				t.Errorf("cleanup ran %d times and Close %d, want 1 and 0", cleanups, closes)
			}
			if !c.explicit && closes != 1 {
				t.Errorf("Close ran %d times, want 1", closes)
			}

			if strings.HasPrefix(c.name, "func() R") || !strings.Contains(c.name, "error)") {
				return // cannot fail
			}
			closes, cleanups = 0, 0
			p, err = New[*conn](resources.PerWorker(c.make(&closes, &cleanups, fail)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Open(ctx, w, nil)
			var oe *resources.OpenError
			if !errors.Is(err, fail) || !errors.As(err, &oe) {
				t.Errorf("Open = %v, want an *OpenError wrapping %v", err, fail)
			}
			if closes+cleanups != 0 {
				t.Errorf("a failed constructor's value was cleaned up (%d closes, %d cleanups)", closes, cleanups)
			}
		})
	}
}

// TestDirectPanicIsAnError: a constructor called directly that panics
// fails the open with an error naming the resource, as one called through
// reflection does.
func TestDirectPanicIsAnError(t *testing.T) {
	p, err := New[*conn](resources.PerWorker(func(resources.Worker) (*conn, error) { panic("boom") }))
	if err != nil {
		t.Fatal(err)
	}
	if p.direct == nil {
		t.Fatal("the plan calls this form through reflection")
	}
	_, err = p.Open(context.Background(), resources.Worker{}, nil)
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "*plan.conn") {
		t.Errorf("Open = %v, want an error naming the resource and the panic", err)
	}
}

// TestDirectOnlyForTheSimplePlan: a named cleanup type, a parameter from
// the fx graph or a second constructor keep the reflective call.
func TestDirectOnlyForTheSimplePlan(t *testing.T) {
	type release func()
	named := func(resources.Worker) (*conn, release, error) { return &conn{}, func() {}, nil }
	fromGraph := func(s fmt.Stringer) *conn { return &conn{} }
	p, err := New[*conn](resources.PerWorker(named))
	if err != nil {
		t.Fatal(err)
	}
	if p.direct != nil {
		t.Error("a named cleanup type is called directly")
	}
	p2, err := New[*conn](resources.PerWorker(fromGraph))
	if err != nil {
		t.Fatal(err)
	}
	if p2.direct != nil {
		t.Error("a constructor with a parameter from the fx graph is called directly")
	}
}
