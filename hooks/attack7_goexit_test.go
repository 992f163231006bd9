package hooks_test

// Round 7: hooks.Stack.Close with cleanups that call runtime.Goexit, in every
// company: panics, a stuck cleanup and an ending context, re-entrant Close and
// Push, nested stacks, concurrent Closes, and callers locked to their thread.
//
// Close: "The cleanups run on a goroutine of Close's own. A cleanup that calls
// runtime.Goexit ... is treated like one that panics: its error wraps
// ErrGoexit, the cleanups behind it still run, and Close returns; the Goexit
// ends that goroutine only, never the caller's." "If ctx ends while a cleanup
// is still running, Close returns at once the errors of the cleanups that had
// already returned, joined with a *CleanupError that wraps ErrStuck ... and
// names the running cleanup and those behind it. The rest of the stack then
// runs in the background as the stuck cleanup returns". "A second Close is a
// no-op that returns nil." Push: "Pushing onto a stack that is already closed
// runs nothing and returns ErrClosed".

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
)

const a7Hang = 10 * time.Second

type a7Order struct {
	mu  sync.Mutex
	ran []string
}

func (o *a7Order) add(s string) {
	o.mu.Lock()
	o.ran = append(o.ran, s)
	o.mu.Unlock()
}

func (o *a7Order) get() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.ran, ",")
}

func a7GoID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// closeOn runs s.Close(ctx) on a fresh goroutine (a Goexit reaching it would
// never send) and fails the test on a hang.
func a7Close(t *testing.T, s *hooks.Stack, ctx context.Context) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(a7Hang):
		t.Fatal("hang: Close did not return")
		return nil
	}
}

func a7Names(err error, target error) []string {
	var names []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		var ce *hooks.CleanupError
		if errors.As(e, &ce) && (target == nil || errors.Is(ce, target)) {
			if u, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range u.Unwrap() {
					walk(x)
				}
				return
			}
			names = append(names, ce.Name)
			return
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return names
}

// A Goexit, then a cleanup stuck past the context: Close returns the Goexit's
// error joined with the stuck one naming those behind; the rest runs in order
// once the stuck cleanup returns.
func TestAttack7_GoexitThenStuck(t *testing.T) {
	var s hooks.Stack
	var o a7Order
	release := make(chan struct{})
	finished := make(chan struct{})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Push("a", func(context.Context) error { o.add("a"); close(finished); return nil }))
	must(s.Push("b", func(context.Context) error { o.add("b"); runtime.Goexit(); return nil }))
	must(s.Push("c", func(ctx context.Context) error { o.add("c"); <-ctx.Done(); <-release; return errors.New("c late") }))
	must(s.Push("d", func(context.Context) error { o.add("d"); runtime.Goexit(); return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for !strings.Contains(o.get(), "c") {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := a7Close(t, &s, ctx)
	t.Logf("Close = %v", err)
	if !errors.Is(err, hooks.ErrGoexit) || !errors.Is(err, hooks.ErrStuck) {
		t.Errorf("Close = %v, want d's ErrGoexit and c's ErrStuck", err)
	}
	if got := a7Names(err, hooks.ErrGoexit); !slices.Equal(got, []string{"d"}) {
		t.Errorf("Goexit errors name %v, want [d]", got)
	}
	var ce *hooks.CleanupError
	found := false
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if errors.As(e, &ce) && errors.Is(e, hooks.ErrStuck) {
			found = true
			if ce.Name != "c" || !slices.Equal(ce.Waiting, []string{"b", "a"}) {
				t.Errorf("stuck error names %q waiting %v, want c waiting [b a]", ce.Name, ce.Waiting)
			}
			if !errors.Is(e, context.Canceled) {
				t.Errorf("stuck error %v does not wrap the context's cause", e)
			}
		}
	}
	if !found {
		t.Errorf("no stuck CleanupError in %v", err)
	}
	if got := o.get(); got != "d,c" {
		t.Errorf("ran %q before release, want d,c", got)
	}
	close(release)
	select {
	case <-finished:
	case <-time.After(a7Hang):
		t.Fatal("hang: the rest of the stack never ran after c returned (b Goexits in the background)")
	}
	if got := o.get(); got != "d,c,b,a" {
		t.Errorf("ran %q, want d,c,b,a", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// Goexit while panicking, panic while Goexiting, recover-then-Goexit: Close
// returns, names the cleanup, and runs the rest.
func TestAttack7_GoexitAndPanicMixed(t *testing.T) {
	cases := map[string]hooks.Cleanup{
		"goexit in defer of panic": func(context.Context) error {
			defer runtime.Goexit()
			panic("p1")
		},
		"panic in defer of goexit": func(context.Context) error {
			defer func() { panic("p2") }()
			runtime.Goexit()
			return nil
		},
		"recover then goexit": func(context.Context) error {
			defer func() { recover(); runtime.Goexit() }()
			panic("p3")
		},
		"goexit with recovered panic in defer": func(context.Context) error {
			defer func() {
				defer func() { recover() }()
				panic("p4")
			}()
			runtime.Goexit()
			return nil
		},
		"goexit from a nested defer chain": func(context.Context) error {
			defer func() { runtime.Goexit() }()
			defer func() { runtime.Goexit() }()
			return errors.New("plain")
		},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			var s hooks.Stack
			var o a7Order
			_ = s.Push("a", func(context.Context) error { o.add("a"); return nil })
			_ = s.Push("bad", func(ctx context.Context) error { o.add("bad"); return bad(ctx) })
			_ = s.Push("c", func(context.Context) error { o.add("c"); return nil })
			for _, cancelable := range []bool{false} {
				ctx := context.Background()
				if cancelable {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
				}
				err := a7Close(t, &s, ctx)
				t.Logf("Close = %v", err)
				if got := o.get(); got != "c,bad,a" {
					t.Errorf("ran %q, want c,bad,a", got)
				}
				if got := a7Names(err, nil); !slices.Equal(got, []string{"bad"}) {
					t.Errorf("errors name %v, want [bad]: %v", got, err)
				}
				var pe *hooks.PanicError
				if !errors.Is(err, hooks.ErrGoexit) && !errors.As(err, &pe) {
					t.Errorf("Close = %v: neither a Goexit nor a panic", err)
				}
			}
		})
	}
}

// A cleanup that calls Close re-entrantly, pushes, then Goexits: the inner
// Close is a no-op returning nil, the push is run or refused, the rest runs.
func TestAttack7_ReentrantThenGoexit(t *testing.T) {
	for i := range 50 {
		var s hooks.Stack
		var o a7Order
		var innerClose, pushErr error
		var pushedRan atomic.Int32
		_ = s.Push("a", func(context.Context) error { o.add("a"); return nil })
		_ = s.Push("b", func(ctx context.Context) error {
			o.add("b")
			innerClose = s.Close(ctx)
			pushErr = s.Push("late", func(context.Context) error { pushedRan.Add(1); return nil })
			runtime.Goexit()
			return nil
		})
		err := a7Close(t, &s, context.Background())
		if innerClose != nil {
			t.Errorf("Close from inside a cleanup = %v, want nil", innerClose)
		}
		if got := o.get(); got != "b,a" {
			t.Errorf("ran %q, want b,a", got)
		}
		if !errors.Is(err, hooks.ErrGoexit) {
			t.Errorf("Close = %v, want ErrGoexit", err)
		}
		if pushErr == nil {
			// accepted: must run exactly once, in the background if need be
			deadline := time.Now().Add(a7Hang)
			for pushedRan.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if pushedRan.Load() != 1 {
				t.Fatalf("iteration %d: Push during Close returned nil, the cleanup ran %d times", i, pushedRan.Load())
			}
		} else if !errors.Is(pushErr, hooks.ErrClosed) {
			t.Errorf("Push during Close = %v", pushErr)
		} else if pushedRan.Load() != 0 {
			t.Errorf("refused push ran")
		}
	}
}

// A cleanup that closes an inner stack whose cleanup Goexits: the inner Close
// returns ErrGoexit to the cleanup, which returns it; the outer goes on.
func TestAttack7_NestedStacksGoexit(t *testing.T) {
	var outer hooks.Stack
	var o a7Order
	_ = outer.Push("a", func(context.Context) error { o.add("a"); return nil })
	_ = outer.Push("inner", func(ctx context.Context) error {
		var in hooks.Stack
		_ = in.Push("x", func(context.Context) error { o.add("x"); return nil })
		_ = in.Push("y", func(context.Context) error { o.add("y"); runtime.Goexit(); return nil })
		err := in.Close(ctx)
		o.add("inner")
		return err
	})
	err := a7Close(t, &outer, context.Background())
	if got := o.get(); got != "y,x,inner,a" {
		t.Errorf("ran %q, want y,x,inner,a", got)
	}
	if !errors.Is(err, hooks.ErrGoexit) {
		t.Errorf("Close = %v, want the inner ErrGoexit", err)
	}
}

// Concurrent Closes while a cleanup Goexits: every cleanup runs once, every
// Close returns; exactly one reports the Goexit.
func TestAttack7_ConcurrentClosesWithGoexit(t *testing.T) {
	for range 100 {
		var s hooks.Stack
		var counts [4]atomic.Int32
		for i := range 4 {
			_ = s.Push(strconv.Itoa(i), func(context.Context) error {
				counts[i].Add(1)
				if i == 2 {
					runtime.Goexit()
				}
				return nil
			})
		}
		var wg sync.WaitGroup
		var goexits atomic.Int32
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Close(context.Background()); errors.Is(err, hooks.ErrGoexit) {
					goexits.Add(1)
				} else if err != nil {
					t.Errorf("Close = %v", err)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(a7Hang):
			t.Fatal("hang: concurrent Closes")
		}
		// A second Close "is a no-op that returns nil": it need not wait, so the
		// first may still be running its cleanups; wait for them.
		deadline := time.Now().Add(a7Hang)
		for counts[0].Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		for i := range 4 {
			if n := counts[i].Load(); n != 1 {
				t.Fatalf("cleanup %d ran %d times", i, n)
			}
		}
		if goexits.Load() != 1 {
			t.Fatalf("%d Closes reported the Goexit, want 1", goexits.Load())
		}
	}
}

// A caller locked to its thread: the cleanups run on a goroutine of Close's
// own (not the caller's), a Goexit in one leaves the caller alive, still
// locked to its thread; and a cleanup that locks its goroutine and Goexits
// (ending that thread) does not stop those behind it.
func TestAttack7_LockedCallerGoexit(t *testing.T) {
	type res struct {
		err              error
		before, after    int
		callerG          uint64
		cleanupG         []uint64
		ranBehind        bool
		afterLockedCheck bool
	}
	out := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var r res
		r.callerG = a7GoID()
		r.before = syscall.Gettid()
		var mu sync.Mutex
		var s hooks.Stack
		see := func() { mu.Lock(); r.cleanupG = append(r.cleanupG, a7GoID()); mu.Unlock() }
		_ = s.Push("behind", func(context.Context) error { see(); r.ranBehind = true; return nil })
		_ = s.Push("locks-and-exits", func(context.Context) error { see(); runtime.LockOSThread(); runtime.Goexit(); return nil })
		_ = s.Push("exits", func(context.Context) error { see(); runtime.Goexit(); return nil })
		r.err = s.Close(context.Background())
		r.after = syscall.Gettid()
		// still locked: a Gosched must not move us
		runtime.Gosched()
		r.afterLockedCheck = syscall.Gettid() == r.before
		out <- r
	}()
	var r res
	select {
	case r = <-out:
	case <-time.After(a7Hang):
		t.Fatal("hang: Close from a locked goroutine (or the caller was ended)")
	}
	t.Logf("caller g%d thread %d→%d, cleanups on %v: %v", r.callerG, r.before, r.after, r.cleanupG, r.err)
	if r.before != r.after || !r.afterLockedCheck {
		t.Errorf("the locked caller moved thread: %d → %d", r.before, r.after)
	}
	if !r.ranBehind {
		t.Error("the cleanup behind two Goexits did not run")
	}
	if got := a7Names(r.err, hooks.ErrGoexit); !slices.Equal(got, []string{"exits", "locks-and-exits"}) {
		t.Errorf("Goexit errors name %v: %v", got, r.err)
	}
	for _, g := range r.cleanupG {
		if g == r.callerG {
			t.Errorf("a cleanup ran on the caller's goroutine g%d; the doc says a goroutine of Close's own", g)
		}
	}
}

// Close with a context that has already ended and a first cleanup that
// Goexits: "Once ctx is done, cleanups that have not started still run, in
// order, with that ctx"; Close returns either way.
func TestAttack7_EndedContextAndGoexit(t *testing.T) {
	for range 50 {
		var s hooks.Stack
		var o a7Order
		all := make(chan struct{})
		_ = s.Push("a", func(ctx context.Context) error {
			o.add("a")
			if ctx.Err() == nil {
				t.Error("a got a live context")
			}
			close(all)
			return nil
		})
		_ = s.Push("b", func(context.Context) error { o.add("b"); runtime.Goexit(); return nil })
		_ = s.Push("c", func(context.Context) error { o.add("c"); runtime.Goexit(); return nil })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := a7Close(t, &s, ctx)
		select {
		case <-all:
		case <-time.After(a7Hang):
			t.Fatal("hang: a never ran")
		}
		if got := o.get(); got != "c,b,a" {
			t.Fatalf("ran %q, want c,b,a (Close = %v)", got, err)
		}
		if err == nil {
			t.Fatalf("Close = nil, though two cleanups called Goexit")
		}
	}
}
