package stack_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/fxpool/fxpool/hooks"
	"github.com/fxpool/fxpool/internal/stack"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder records the order in which cleanups ran.
type recorder struct {
	mu  sync.Mutex
	ran []string
}

func (r *recorder) cleanup(name string, err error) hooks.Cleanup {
	return func(context.Context) error {
		r.mu.Lock()
		r.ran = append(r.ran, name)
		r.mu.Unlock()
		return err
	}
}

func (r *recorder) order() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.ran, ",")
}

func mustPush(t *testing.T, s *hooks.Stack, name string, fn hooks.Cleanup) {
	t.Helper()
	if err := s.Push(name, fn); err != nil {
		t.Fatal(err)
	}
}

func TestUnwindWaitsAndStuckReportsProgress(t *testing.T) {
	var (
		s       hooks.Stack
		rec     recorder
		entered = make(chan struct{})
		release = make(chan struct{})
		boom    = errors.New("boom")
	)
	if err := stack.Stuck(&s, context.Canceled); err != nil {
		t.Errorf("Stuck() before closing = %v, want nil", err)
	}
	mustPush(t, &s, "db", rec.cleanup("db", nil))
	mustPush(t, &s, "conn", func(context.Context) error {
		close(entered)
		<-release
		return rec.cleanup("conn", nil)(nil)
	})
	mustPush(t, &s, "batch", rec.cleanup("batch", boom))

	unwound := make(chan error, 1)
	go func() { unwound <- stack.Unwind(&s, context.Background()) }()
	<-entered
	err := stack.Stuck(&s, context.DeadlineExceeded)
	var ce *hooks.CleanupError
	if joined, ok := err.(interface{ Unwrap() []error }); ok && len(joined.Unwrap()) == 2 {
		errors.As(joined.Unwrap()[1], &ce)
	}
	if !errors.Is(err, boom) || !errors.Is(err, hooks.ErrStuck) || !errors.Is(err, context.DeadlineExceeded) ||
		ce == nil || ce.Name != "conn" || strings.Join(ce.Waiting, ",") != "db" {
		t.Errorf("Stuck() while conn hangs = %v, want batch's error and conn stuck with db waiting", err)
	}
	select {
	case err := <-unwound:
		t.Fatalf("Unwind returned %v while a cleanup was running", err)
	default:
	}
	close(release)
	if err := <-unwound; !errors.Is(err, boom) || errors.Is(err, hooks.ErrStuck) {
		t.Errorf("Unwind() = %v, want only batch's error", err)
	}
	if got := rec.order(); got != "batch,conn,db" {
		t.Errorf("ran %q, want batch,conn,db", got)
	}
	if err := stack.Stuck(&s, context.Canceled); !errors.Is(err, boom) || errors.Is(err, hooks.ErrStuck) {
		t.Errorf("Stuck() after unwinding = %v, want only the errors", err)
	}
	if err := stack.Unwind(&s, context.Background()); err != nil {
		t.Errorf("second Unwind() = %v, want nil", err)
	}
}

// A cleanup's runtime.Goexit ends the goroutine that called Unwind, which
// cannot be helped, but only once the cleanups behind it have run; Stuck
// then reports its ErrGoexit.
func TestUnwindRunsTheRestBeforeAGoexitEndsTheCaller(t *testing.T) {
	var (
		s   hooks.Stack
		rec recorder
	)
	mustPush(t, &s, "db", rec.cleanup("db", nil))
	mustPush(t, &s, "conn", func(context.Context) error { runtime.Goexit(); return nil })
	mustPush(t, &s, "batch", rec.cleanup("batch", nil))
	returned := make(chan bool, 2)
	go func() {
		defer func() { returned <- false }() // runs first if Unwind returned
		_ = stack.Unwind(&s, context.Background())
		returned <- true
	}()
	if <-returned {
		t.Fatal("Unwind returned despite a cleanup's Goexit")
	}
	if got := rec.order(); got != "batch,db" {
		t.Errorf("ran %q, want batch,db", got)
	}
	var ce *hooks.CleanupError
	if err := stack.Stuck(&s, context.Canceled); !errors.As(err, &ce) || ce.Name != "conn" || !errors.Is(err, hooks.ErrGoexit) {
		t.Errorf("Stuck() after unwinding = %v, want conn's ErrGoexit", err)
	}
}
