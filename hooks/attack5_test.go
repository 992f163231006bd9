package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
)

// a5guard fails the test if done does not close within a generous bound.
func a5guard(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("hang: %s", what)
	}
}

type a5key struct{}

// "A second Close is a no-op that returns nil", and Push "does not block":
// a cleanup that calls Close on its own stack must not deadlock.
func TestAttack5_CloseFromInsideACleanupIsANoop(t *testing.T) {
	var s hooks.Stack
	var inner error = errors.New("unset")
	ran := 0
	s.Push("outer", func(ctx context.Context) error {
		ran++
		inner = s.Close(ctx)
		return nil
	})
	done := make(chan struct{})
	var err error
	go func() { defer close(done); err = s.Close(context.Background()) }()
	a5guard(t, done, "Close called from a cleanup deadlocked")
	if err != nil || inner != nil {
		t.Fatalf("outer Close = %v, inner Close = %v; want nil, nil", err, inner)
	}
	if ran != 1 {
		t.Fatalf("cleanup ran %d times", ran)
	}
}

// "Push ... does not block. Pushing onto a stack that is already closed runs
// nothing and returns ErrClosed: the caller still owns the resource."
// A Push from within a running cleanup must either be run by this Close or
// refused with ErrClosed: never accepted and then silently dropped.
func TestAttack5_PushDuringCloseIsRunOrRefused(t *testing.T) {
	var s hooks.Stack
	var pushErr error
	var lateRan atomic.Int32
	s.Push("first", func(context.Context) error {
		pushErr = s.Push("late", func(context.Context) error { lateRan.Add(1); return nil })
		return nil
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Close(context.Background()) }()
	a5guard(t, done, "Push from a cleanup blocked Close")
	switch {
	case pushErr == nil && lateRan.Load() != 1:
		t.Fatalf("Push during Close returned nil but its cleanup ran %d times: the resource is neither closed nor the caller's", lateRan.Load())
	case pushErr != nil && !errors.Is(pushErr, hooks.ErrClosed):
		t.Fatalf("Push during Close = %v, want nil or ErrClosed", pushErr)
	case pushErr != nil && lateRan.Load() != 0:
		t.Fatalf("Push returned ErrClosed but its cleanup ran")
	}
	// and after Close, Push is ErrClosed and runs nothing
	var after atomic.Bool
	if err := s.Push("after", func(context.Context) error { after.Store(true); return nil }); !errors.Is(err, hooks.ErrClosed) {
		t.Fatalf("Push after Close = %v, want ErrClosed", err)
	}
	_ = s.Close(context.Background())
	if after.Load() {
		t.Fatal("a refused cleanup ran")
	}
}

// "Close runs every pushed cleanup once" — under concurrent Closes and
// Pushes too ("A Stack is safe for concurrent use").
func TestAttack5_ConcurrentClosesRunEachCleanupOnce(t *testing.T) {
	for round := range 20 {
		var s hooks.Stack
		const n = 50
		var counts [n]atomic.Int32
		var accepted [n]atomic.Bool
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Push(fmt.Sprint(i), func(context.Context) error { counts[i].Add(1); return nil })
				if err == nil {
					accepted[i].Store(true)
				} else if !errors.Is(err, hooks.ErrClosed) {
					t.Errorf("Push = %v", err)
				}
			}()
		}
		closeErrs := make([]error, 4)
		for c := range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); closeErrs[c] = s.Close(context.Background()) }()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		a5guard(t, done, "concurrent Close/Push")
		// A Close that returned may leave nothing behind: every accepted
		// push has run exactly once by the time every Close returned.
		for i := range n {
			if accepted[i].Load() && counts[i].Load() != 1 {
				t.Fatalf("round %d: accepted cleanup %d ran %d times", round, i, counts[i].Load())
			}
			if !accepted[i].Load() && counts[i].Load() != 0 {
				t.Fatalf("round %d: refused cleanup %d ran", round, i)
			}
		}
		for _, err := range closeErrs {
			if err != nil {
				t.Fatalf("Close = %v", err)
			}
		}
	}
}

// The stuck case, every clause: "Close returns at once the errors of the
// cleanups that had already returned, joined with a *CleanupError that wraps
// ErrStuck and the context's cause and names the running cleanup and those
// behind it. The rest of the stack then runs in the background as the stuck
// cleanup returns ... Once ctx is done, cleanups that have not started still
// run, in order, with that ctx."
func TestAttack5_StuckCloseEveryClause(t *testing.T) {
	var s hooks.Stack
	var mu sync.Mutex
	var order []string
	rec := func(n string) {
		mu.Lock()
		order = append(order, n)
		mu.Unlock()
	}
	errC := errors.New("c failed")
	cause := errors.New("the deadline of the test")
	release := make(chan struct{})
	aDone := make(chan struct{})
	var aCtxErr error
	var aVal any
	s.Push("a", func(ctx context.Context) error {
		rec("a")
		aCtxErr = ctx.Err()
		aVal = ctx.Value(a5key{})
		close(aDone)
		return errors.New("a's error is dropped")
	})
	s.Push("a2", func(context.Context) error { rec("a2"); return nil })
	s.Push("b", func(ctx context.Context) error {
		rec("b")
		<-release // ignores its context
		return errors.New("b's error is dropped")
	})
	s.Push("c", func(context.Context) error { rec("c"); return errC })

	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), a5key{}, "v"))
	go func() {
		for {
			mu.Lock()
			started := slices.Contains(order, "b")
			mu.Unlock()
			if started {
				cancel(cause)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	done := make(chan struct{})
	var err error
	go func() { defer close(done); err = s.Close(ctx) }()
	a5guard(t, done, "Close did not return once its context ended")

	if !errors.Is(err, errC) {
		t.Errorf("err %v does not contain c's error", err)
	}
	if !errors.Is(err, hooks.ErrStuck) {
		t.Errorf("err %v does not wrap ErrStuck", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("err %v does not wrap the context's cause", err)
	}
	var stuck *hooks.CleanupError
	found := false
	for _, e := range unjoin(err) {
		if errors.As(e, &stuck) && errors.Is(e, hooks.ErrStuck) {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("no *CleanupError wraps ErrStuck in %v", err)
	}
	if stuck.Name != "b" {
		t.Errorf("stuck cleanup named %q, want b", stuck.Name)
	}
	if !slices.Equal(stuck.Waiting, []string{"a2", "a"}) {
		t.Errorf("Waiting = %q, want [a2 a] (in the order they will run)", stuck.Waiting)
	}
	msg := err.Error()
	for _, n := range []string{"b", "a2"} {
		if !strings.Contains(msg, n) {
			t.Errorf("message %q does not name %q", msg, n)
		}
	}
	close(release)
	a5guard(t, aDone, "the cleanups behind the stuck one never ran")
	mu.Lock()
	got := slices.Clone(order)
	mu.Unlock()
	if !slices.Equal(got, []string{"c", "b", "a2", "a"}) {
		t.Errorf("order = %q, want [c b a2 a]", got)
	}
	if aCtxErr == nil || aVal != "v" {
		t.Errorf("late cleanup got ctx err %v value %v; want Close's (done) ctx", aCtxErr, aVal)
	}
	if err2 := s.Close(context.Background()); err2 != nil {
		t.Errorf("second Close = %v", err2)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// "Once ctx is done, cleanups that have not started still run, in order,
// with that ctx": a Close given an already-ended context still runs every
// cleanup, once each, last first.
func TestAttack5_CloseWithEndedContextStillRunsEverything(t *testing.T) {
	var s hooks.Stack
	var mu sync.Mutex
	var order []int
	all := make(chan struct{})
	const n = 5
	for i := range n {
		s.Push(fmt.Sprint(i), func(ctx context.Context) error {
			mu.Lock()
			order = append(order, i)
			if len(order) == n {
				close(all)
			}
			mu.Unlock()
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
	a5guard(t, all, "cleanups never ran after a Close with an ended context")
	if !slices.Equal(order, []int{4, 3, 2, 1, 0}) {
		t.Fatalf("order %v", order)
	}
}

// "turns a panicking cleanup into a *PanicError carrying its stack ...
// Each error is a *CleanupError that names the resource"; "Its Unwrap returns
// the value if it is an error".
func TestAttack5_PanicValuesOfEveryKind(t *testing.T) {
	sentinel := errors.New("sentinel")
	cases := map[string]any{
		"string":  "boom",
		"error":   fmt.Errorf("wrapped: %w", sentinel),
		"int":     42,
		"nilerr":  (*myErr)(nil),
		"panicN":  new(int),
		"errWrap": &myErr{},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			var s hooks.Stack
			s.Push("res-"+name, func(context.Context) error { panic(v) })
			err := s.Close(context.Background())
			var ce *hooks.CleanupError
			if !errors.As(err, &ce) || ce.Name != "res-"+name {
				t.Fatalf("err %v: no *CleanupError named res-%s", err, name)
			}
			var pe *hooks.PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v: no *PanicError", err)
			}
			if pe.Value != v {
				t.Errorf("Value = %v, want %v", pe.Value, v)
			}
			if len(pe.Stack) == 0 {
				t.Errorf("empty stack")
			}
			if name == "error" && !errors.Is(err, sentinel) {
				t.Errorf("errors.Is does not see through panic(err)")
			}
			if !strings.Contains(err.Error(), "res-"+name) {
				t.Errorf("message %q does not name the resource", err)
			}
		})
	}
}

type myErr struct{}

func (*myErr) Error() string { return "myErr" }
