package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
)

type a15rec struct {
	mu  sync.Mutex
	ran []string
}

func (r *a15rec) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, s)
}

func (r *a15rec) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func a15waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var (
	errA15First  = errors.New("first failure")
	errA15Second = errors.New("second failure")
	errA15Cause  = errors.New("the owner gave up")
)

// A stuck cleanup: Close returns when its context ends, with the earlier
// errors, and a *CleanupError naming the stuck cleanup, wrapping ErrStuck and
// the context's cause, listing those waiting behind it in run order. They run
// later, in order, with the ended ctx; their errors are dropped. A second Close
// is a no-op and a Push is refused meanwhile.
func TestAttack15AcceptStuckCloseEveryClause(t *testing.T) {
	var s hooks.Stack
	r := &a15rec{}
	release := make(chan struct{})
	var waitingCtxErr atomic.Value
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Push("w1", func(ctx context.Context) error {
		waitingCtxErr.Store(fmt.Sprint(ctx.Err()))
		r.add("w1")
		return errA15Second // dropped
	}))
	must(s.Push("w2", func(context.Context) error { r.add("w2"); return nil }))
	started := make(chan struct{})
	must(s.Push("stuck", func(context.Context) error {
		close(started)
		<-release // ignores its context
		r.add("stuck")
		return nil
	}))
	must(s.Push("failing", func(context.Context) error { r.add("failing"); return errA15First }))

	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-started
		cancel(errA15Cause)
	}()
	done := make(chan error, 1)
	go func() { done <- s.Close(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Close blocked past its context")
	}
	if !errors.Is(err, errA15First) {
		t.Errorf("the error of the cleanup that returned before is lost: %v", err)
	}
	if !errors.Is(err, hooks.ErrStuck) || !errors.Is(err, errA15Cause) {
		t.Errorf("err does not wrap ErrStuck and the context's cause: %v", err)
	}
	var stuck *hooks.CleanupError
	found := false
	for _, e := range flatten(err) {
		if errors.As(e, &stuck) && errors.Is(stuck, hooks.ErrStuck) {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no *CleanupError wrapping ErrStuck in %v", err)
	}
	if stuck.Name != "stuck" || !slices.Equal(stuck.Waiting, []string{"w2", "w1"}) {
		t.Errorf("stuck CleanupError: Name %q Waiting %q; want stuck, [w2 w1]", stuck.Name, stuck.Waiting)
	}
	for _, name := range []string{"stuck", "w2", "w1"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("message does not name %q: %v", name, err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	if err := s.Push("late", func(context.Context) error { r.add("late"); return nil }); !errors.Is(err, hooks.ErrClosed) {
		t.Errorf("Push after Close = %v; want ErrClosed", err)
	}
	close(release)
	a15waitFor(t, func() bool { return len(r.get()) == 4 }, "the waiting cleanups")
	time.Sleep(10 * time.Millisecond)
	if got := r.get(); !slices.Equal(got, []string{"failing", "stuck", "w2", "w1"}) {
		t.Errorf("ran %q; want [failing stuck w2 w1], each once", got)
	}
	if v, _ := waitingCtxErr.Load().(string); v == "<nil>" {
		t.Errorf("a cleanup that started after ctx ended got a live context; want that ctx")
	}
}

// flatten unwraps joined errors one level at a time.
func flatten(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		out = append(out, e)
	}
	walk(err)
	return out
}

// Every failure is joined, each a *CleanupError of its own name, in run order;
// a panic(err) is found by errors.Is and carries its stack; a Goexit is
// ErrGoexit, and the cleanups behind each still run.
func TestAttack15AcceptEveryFailureJoinedAndNamed(t *testing.T) {
	var s hooks.Stack
	r := &a15rec{}
	push := func(name string, f hooks.Cleanup) {
		t.Helper()
		if err := s.Push(name, f); err != nil {
			t.Fatal(err)
		}
	}
	push("e", func(context.Context) error { r.add("e"); return nil })
	push("d", func(context.Context) error { r.add("d"); runtime.Goexit(); return nil })
	push("c", func(context.Context) error { r.add("c"); panic(fmt.Errorf("wrapped: %w", errA15Second)) })
	push("b", func(context.Context) error { r.add("b"); return nil })
	push("a", func(context.Context) error { r.add("a"); return fmt.Errorf("ctx: %w", errA15First) })

	err := s.Close(context.Background())
	if got := r.get(); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("ran %q; want [a b c d e]", got)
	}
	parts := flatten(err)
	var names []string
	for _, p := range parts {
		var ce *hooks.CleanupError
		if !errors.As(p, &ce) {
			t.Errorf("joined error %v is not a *CleanupError", p)
			continue
		}
		names = append(names, ce.Name)
	}
	if !slices.Equal(names, []string{"a", "c", "d"}) {
		t.Errorf("failures named %q; want [a c d]", names)
	}
	if !errors.Is(err, errA15First) || !errors.Is(err, errA15Second) || !errors.Is(err, hooks.ErrGoexit) {
		t.Errorf("errors.Is misses a failure: %v", err)
	}
	var pe *hooks.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("no *PanicError: %v", err)
	} else if len(pe.Stack) == 0 {
		t.Errorf("PanicError has no stack")
	}
}

// A nil cleanup is bad input: Push refuses it with an error naming it, or
// Close reports it by name; either way the other cleanups run and nothing
// panics.
func TestAttack15AcceptNilCleanupIsAnErrorNotAPanic(t *testing.T) {
	var s hooks.Stack
	r := &a15rec{}
	_ = s.Push("before", func(context.Context) error { r.add("before"); return nil })
	pushErr := s.Push("nilcleanup", nil)
	_ = s.Push("after", func(context.Context) error { r.add("after"); return nil })
	var closeErr error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Close panicked: %v", p)
			}
		}()
		closeErr = s.Close(context.Background())
	}()
	if pushErr == nil && (closeErr == nil || !strings.Contains(closeErr.Error(), "nilcleanup")) {
		t.Errorf("a nil cleanup was accepted and Close = %v: nothing names it", closeErr)
	}
	if pushErr != nil && !strings.Contains(pushErr.Error(), "nilcleanup") {
		t.Errorf("Push error does not name the cleanup: %v", pushErr)
	}
	if got := r.get(); !slices.Equal(got, []string{"after", "before"}) {
		t.Errorf("ran %q; want [after before]", got)
	}
}

// Push racing Close: every Push that returned nil has its cleanup run exactly
// once by the time Close (without a deadline) returned; every refused one
// never runs.
func TestAttack15AcceptPushRacingCloseRunsEveryAcceptedOnce(t *testing.T) {
	for trial := range 200 {
		var s hooks.Stack
		const n = 64
		var ran [n]atomic.Int32
		var accepted [n]bool
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGate
				accepted[i] = s.Push(fmt.Sprint(i), func(context.Context) error { ran[i].Add(1); return nil }) == nil
			}()
		}
		var closeErr error
		closed := make(chan struct{})
		go func() {
			<-startGate
			closeErr = s.Close(context.Background())
			close(closed)
		}()
		close(startGate)
		wg.Wait()
		<-closed
		if closeErr != nil {
			t.Fatalf("trial %d: Close = %v", trial, closeErr)
		}
		// Pushes that returned nil after Close began may run in the
		// background: give them a moment, then count.
		a15waitFor(t, func() bool {
			for i := range n {
				if accepted[i] && ran[i].Load() == 0 {
					return false
				}
			}
			return true
		}, "accepted cleanups")
		for i := range n {
			if got := ran[i].Load(); accepted[i] && got != 1 || !accepted[i] && got != 0 {
				t.Fatalf("trial %d: cleanup %d accepted=%v ran %d times", trial, i, accepted[i], got)
			}
		}
	}
}

// Close without a deadline blocks until every cleanup has returned, however
// slow.
func TestAttack15AcceptCloseWithoutDeadlineWaitsForEverything(t *testing.T) {
	var s hooks.Stack
	var done atomic.Int32
	for i := range 3 {
		_ = s.Push(fmt.Sprint(i), func(ctx context.Context) error {
			time.Sleep(20 * time.Millisecond)
			done.Add(1)
			return nil
		})
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := done.Load(); n != 3 {
		t.Errorf("Close returned after %d of 3 cleanups", n)
	}
}

// A cleanup that calls t.FailNow-like Goexit while the caller holds a lock:
// Close returns to the caller, which can still unlock (the Goexit ended the
// stack's goroutine, not the caller's), and a cleanup that blocks on that lock
// would have deadlocked if the cleanups ran on the caller.
func TestAttack15AcceptGoexitDoesNotEndTheCaller(t *testing.T) {
	var s hooks.Stack
	r := &a15rec{}
	_ = s.Push("last", func(context.Context) error { r.add("last"); return nil })
	_ = s.Push("goexit", func(context.Context) error { runtime.Goexit(); return nil })
	returned := make(chan error, 1)
	go func() {
		err := s.Close(context.Background())
		returned <- err // reached only if the caller survived
	}()
	select {
	case err := <-returned:
		var ce *hooks.CleanupError
		if !errors.As(err, &ce) || ce.Name != "goexit" || !errors.Is(err, hooks.ErrGoexit) {
			t.Errorf("Close = %v; want a CleanupError named goexit wrapping ErrGoexit", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller of Close never got control back")
	}
	if got := r.get(); !slices.Equal(got, []string{"last"}) {
		t.Errorf("ran %q; want [last]", got)
	}
}

// A stuck Close with a deadline of a few milliseconds returns, and once the
// stuck cleanup returns, nothing is left running (goleak in TestMain).
func TestAttack15AcceptTightDeadlinesLeaveNothingBehind(t *testing.T) {
	for i := range 50 {
		var s hooks.Stack
		var ran atomic.Int32
		release := make(chan struct{})
		_ = s.Push("a", func(context.Context) error { ran.Add(1); return nil })
		_ = s.Push("b", func(ctx context.Context) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			ran.Add(1)
			return ctx.Err()
		})
		_ = s.Push("c", func(context.Context) error { <-release; ran.Add(1); return nil })
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- s.Close(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, hooks.ErrStuck) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("iteration %d: Close = %v; want ErrStuck and DeadlineExceeded", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close hung", i)
		}
		cancel()
		close(release)
		a15waitFor(t, func() bool { return ran.Load() == 3 }, "the rest of the stack")
	}
}

// panic(nil) is a panic, not a Goexit: a *PanicError, and the cleanups behind
// it run.
func TestAttack15AcceptPanicNilIsAPanicNotAGoexit(t *testing.T) {
	var s hooks.Stack
	r := &a15rec{}
	_ = s.Push("after", func(context.Context) error { r.add("after"); return nil })
	_ = s.Push("nilpanic", func(context.Context) error { panic(nil) })
	err := s.Close(context.Background())
	var pe *hooks.PanicError
	if !errors.As(err, &pe) || errors.Is(err, hooks.ErrGoexit) {
		t.Errorf("Close = %v; want a *PanicError, not ErrGoexit", err)
	}
	var ce *hooks.CleanupError
	if !errors.As(err, &ce) || ce.Name != "nilpanic" {
		t.Errorf("Close = %v; want it named nilpanic", err)
	}
	if got := r.get(); !slices.Equal(got, []string{"after"}) {
		t.Errorf("ran %q", got)
	}
}

// The cleanups receive the context given to Close: its values and its
// deadline.
func TestAttack15AcceptCleanupsReceiveClosesContext(t *testing.T) {
	type key struct{}
	var s hooks.Stack
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), key{}, "trace-1"), deadline)
	defer cancel()
	var got any
	var gotDeadline time.Time
	_ = s.Push("x", func(ctx context.Context) error {
		got = ctx.Value(key{})
		gotDeadline, _ = ctx.Deadline()
		return nil
	})
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got != "trace-1" || !gotDeadline.Equal(deadline) {
		t.Errorf("cleanup saw value %v deadline %v; want trace-1 and %v", got, gotDeadline, deadline)
	}
}
