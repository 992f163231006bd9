package hooks_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
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

func TestStackClose(t *testing.T) {
	errA, errC := errors.New("a broke"), errors.New("c broke")
	tests := []struct {
		name      string
		ctx       func(t *testing.T) context.Context
		giveErrs  map[string]error
		wantOrder string
		wantErrs  []error
	}{
		{
			name:      "RunsLastPushedFirst",
			ctx:       func(*testing.T) context.Context { return context.Background() },
			wantOrder: "c,b,a",
		},
		{
			name:      "KeepsGoingPastFailuresAndJoinsThem",
			ctx:       func(*testing.T) context.Context { return context.Background() },
			giveErrs:  map[string]error{"a": errA, "c": errC},
			wantOrder: "c,b,a",
			wantErrs:  []error{errA, errC},
		},
		{
			name:      "WithCancelableContext",
			ctx:       func(t *testing.T) context.Context { return t.Context() },
			giveErrs:  map[string]error{"c": errC},
			wantOrder: "c,b,a",
			wantErrs:  []error{errC},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				s   hooks.Stack
				rec recorder
			)
			for _, name := range []string{"a", "b", "c"} {
				if err := s.Push(name, rec.cleanup(name, tt.giveErrs[name])); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Close(tt.ctx(t))
			if got := rec.order(); got != tt.wantOrder {
				t.Errorf("order = %q, want %q", got, tt.wantOrder)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("Close() = %v, want it to wrap %v", err, want)
				}
			}
			if len(tt.wantErrs) == 0 && err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		})
	}
}

func TestStackErrorsNameTheResource(t *testing.T) {
	var s hooks.Stack
	boom := errors.New("boom")
	mustPush(t, &s, "db", func(context.Context) error { return nil })
	mustPush(t, &s, "conn", func(context.Context) error { return boom })

	err := s.Close(context.Background())
	var ce *hooks.CleanupError
	if !errors.As(err, &ce) {
		t.Fatalf("Close() = %v, want a *CleanupError", err)
	}
	if ce.Name != "conn" || !errors.Is(ce, boom) {
		t.Errorf("CleanupError = %+v, want Name conn wrapping boom", ce)
	}
	if got, want := err.Error(), "close conn: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestStackRecoversPanics(t *testing.T) {
	var (
		s   hooks.Stack
		rec recorder
	)
	mustPush(t, &s, "first", rec.cleanup("first", nil))
	mustPush(t, &s, "panicky", func(context.Context) error { panic("kaboom") })

	err := s.Close(t.Context())
	var pe *hooks.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("Close() = %v, want a *PanicError", err)
	}
	if pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "stack_test.go") {
		t.Errorf("PanicError = %v with stack %q, want kaboom and a stack through this test", pe.Value, pe.Stack)
	}
	if !strings.Contains(err.Error(), "close panicky: panic: kaboom") {
		t.Errorf("Error() = %q, want it to name the resource and the panic", err)
	}
	if got := rec.order(); got != "first" {
		t.Errorf("after a panic, ran %q, want the remaining cleanup to run", got)
	}
}

func TestStackPanicWithErrorUnwraps(t *testing.T) {
	var s hooks.Stack
	boom := errors.New("boom")
	mustPush(t, &s, "x", func(context.Context) error { panic(boom) })
	if err := s.Close(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Close() = %v, want it to wrap the panic's error", err)
	}
}

func TestStackCloseReturnsByDeadlineWhenACleanupHangs(t *testing.T) {
	var (
		s       hooks.Stack
		rec     recorder
		release = make(chan struct{})
		allDone = make(chan struct{})
	)
	mustPush(t, &s, "db", func(context.Context) error {
		defer close(allDone)
		return rec.cleanup("db", nil)(nil)
	})
	mustPush(t, &s, "conn", rec.cleanup("conn", nil))
	mustPush(t, &s, "batch", func(context.Context) error {
		<-release // ignores its context: hangs until the test lets go
		return rec.cleanup("batch", nil)(nil)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)

	if !errors.Is(err, hooks.ErrStuck) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close() = %v, want ErrStuck and DeadlineExceeded", err)
	}
	var ce *hooks.CleanupError
	if !errors.As(err, &ce) || ce.Name != "batch" || strings.Join(ce.Waiting, ",") != "conn,db" {
		t.Errorf("CleanupError = %+v, want batch stuck with conn,db waiting", ce)
	}
	if got := rec.order(); got != "" {
		t.Errorf("ran %q while batch hung, want nothing to overtake it", got)
	}

	close(release)
	<-allDone
	if got := rec.order(); got != "batch,conn,db" {
		t.Errorf("after the hang ended, ran %q, want batch,conn,db", got)
	}
}

func TestStackCloseTwiceIsNoop(t *testing.T) {
	var (
		s   hooks.Stack
		rec recorder
	)
	mustPush(t, &s, "a", rec.cleanup("a", errors.New("once")))
	if err := s.Close(context.Background()); err == nil {
		t.Fatal("first Close() = nil, want the cleanup's error")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if got := rec.order(); got != "a" {
		t.Errorf("ran %q, want a exactly once", got)
	}
}

func TestStackPushAfterClose(t *testing.T) {
	var s hooks.Stack
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := s.Push("late", func(context.Context) error { return nil })
	if !errors.Is(err, hooks.ErrClosed) || !strings.Contains(err.Error(), "late") {
		t.Errorf("Push after Close = %v, want ErrClosed naming late", err)
	}
	if err := s.Push("nil", nil); err == nil || !strings.Contains(err.Error(), "nil cleanup") {
		t.Errorf("Push(nil) = %v, want an error", err)
	}
}

func TestStackConcurrentPush(t *testing.T) {
	var (
		s  hooks.Stack
		wg sync.WaitGroup
	)
	var ran atomic.Int32
	for range 50 {
		wg.Go(func() { _ = s.Push("x", func(context.Context) error { ran.Add(1); return nil }) })
	}
	wg.Wait()
	if err := s.Close(t.Context()); err != nil || ran.Load() != 50 {
		t.Errorf("Close() = %v after running %d cleanups, want nil after 50", err, ran.Load())
	}
}

func mustPush(t *testing.T, s *hooks.Stack, name string, fn hooks.Cleanup) {
	t.Helper()
	if err := s.Push(name, fn); err != nil {
		t.Fatal(err)
	}
}

// A cleanup that calls runtime.Goexit fails with ErrGoexit, the cleanups
// behind it run, and Close returns to its caller, whether or not its
// context can end. A second Goexit, in a cleanup run as the first unwinds,
// is handled the same way.
func TestStackCloseTreatsGoexitLikeAPanic(t *testing.T) {
	for _, cancelable := range []bool{false, true} {
		var (
			s   hooks.Stack
			rec recorder
		)
		goexit := func(name string) hooks.Cleanup {
			return func(context.Context) error {
				_ = rec.cleanup(name, nil)(nil)
				runtime.Goexit()
				return nil
			}
		}
		for _, name := range []string{"a", "b", "c", "d"} {
			fn := rec.cleanup(name, nil)
			if name == "b" || name == "c" {
				fn = goexit(name)
			}
			if err := s.Push(name, fn); err != nil {
				t.Fatal(err)
			}
		}
		ctx := context.Background()
		if cancelable {
			c, cancel := context.WithCancel(ctx)
			defer cancel()
			ctx = c
		}
		done := make(chan error, 1)
		go func() { done <- s.Close(ctx) }() // a Goexit here would never send
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("cancelable %v: Close did not return", cancelable)
		}
		if got := rec.order(); got != "d,c,b,a" {
			t.Errorf("cancelable %v: ran %q, want d,c,b,a", cancelable, got)
		}
		if !errors.Is(err, hooks.ErrGoexit) {
			t.Fatalf("cancelable %v: Close() = %v, want ErrGoexit", cancelable, err)
		}
		var names []string
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ce *hooks.CleanupError
			if errors.As(e, &ce) && errors.Is(ce, hooks.ErrGoexit) {
				names = append(names, ce.Name)
			}
		}
		if strings.Join(names, ",") != "c,b" {
			t.Errorf("cancelable %v: Close() = %v, want the Goexits of c then b", cancelable, err)
		}
	}
}
