package workerpool_test

// Round 10: hooks.Stack as documented: Close runs every pushed cleanup
// once, last pushed first, past errors, panics and Goexits, joins every
// error (each a *CleanupError naming its resource), returns on the caller;
// a second Close is a no-op returning nil; Push after Close runs nothing
// and returns ErrClosed; a nil cleanup is refused; Close never blocks past
// its context and names the stuck cleanup and those waiting behind it, which
// then run in order in the background. Stacks of 0, 1, 2 and many cleanups
// (the first cleanup is kept apart from the rest).

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxpool/fxpool/hooks"
)

func TestAttack10StackSemantics(t *testing.T) {
	kinds := []string{"ok", "err", "panic", "goexit", "panic-err"}
	for _, n := range []int{0, 1, 2, 3, 17} {
		for k := range kinds {
			t.Run(fmt.Sprintf("n%d/%s", n, kinds[k]), func(t *testing.T) {
				var s hooks.Stack
				var mu sync.Mutex
				var ran []int
				errs := make([]error, n)
				for i := range n {
					kind := kinds[(k+i)%len(kinds)]
					errs[i] = fmt.Errorf("a10 cleanup %d", i)
					e := errs[i]
					err := s.Push(fmt.Sprintf("res%d", i), func(context.Context) error {
						mu.Lock()
						ran = append(ran, i)
						mu.Unlock()
						switch kind {
						case "err":
							return e
						case "panic":
							panic(fmt.Sprint(e))
						case "panic-err":
							panic(e)
						case "goexit":
							runtime.Goexit()
						}
						return nil
					})
					if err != nil {
						t.Fatalf("Push %d: %v", i, err)
					}
				}
				var err error
				returned := false
				a10within(t, "Close", 10*time.Second, func() {
					err = s.Close(context.Background())
					returned = true
				})
				if !returned {
					t.Fatal("Close did not return to its caller (a Goexit ended it)")
				}
				want := make([]int, n)
				for i := range n {
					want[i] = n - 1 - i
				}
				mu.Lock()
				if !slices.Equal(ran, want) {
					t.Errorf("ran %v, want %v", ran, want)
				}
				mu.Unlock()
				nerr := 0
				for i := range n {
					kind := kinds[(k+i)%len(kinds)]
					name := fmt.Sprintf("res%d", i)
					var named bool
					for _, ce := range a10cleanupErrors(err) {
						if ce.Name == name {
							named = true
						}
					}
					switch kind {
					case "ok":
						if named {
							t.Errorf("%s succeeded but has a CleanupError", name)
						}
						continue
					case "err", "panic-err":
						if !errors.Is(err, errs[i]) {
							t.Errorf("%s: errors.Is(Close's error, its error) false: %v", name, err)
						}
					case "panic":
						var pe *hooks.PanicError
						if !errors.As(err, &pe) {
							t.Errorf("%s: no *PanicError in %v", name, err)
						}
					case "goexit":
						if !errors.Is(err, hooks.ErrGoexit) {
							t.Errorf("%s: no ErrGoexit in %v", name, err)
						}
					}
					nerr++
					if !named {
						t.Errorf("%s failed (%s) but no *CleanupError names it: %v", name, kind, err)
					}
				}
				if nerr == 0 && err != nil {
					t.Errorf("every cleanup succeeded, Close returned %v", err)
				}
				if nerr > 0 && err == nil {
					t.Errorf("%d cleanups failed, Close returned nil", nerr)
				}
				// second Close: nil, runs nothing.
				if err := s.Close(context.Background()); err != nil {
					t.Errorf("second Close: %v", err)
				}
				var late atomic.Bool
				if err := s.Push("late", func(context.Context) error { late.Store(true); return nil }); !errors.Is(err, hooks.ErrClosed) {
					t.Errorf("Push after Close: %v, want ErrClosed", err)
				}
				_ = s.Close(context.Background())
				mu.Lock()
				if len(ran) != n {
					t.Errorf("cleanups ran %d times after second Close, want %d", len(ran), n)
				}
				mu.Unlock()
				if late.Load() {
					t.Error("a cleanup pushed after Close ran")
				}
			})
		}
	}
}

func a10cleanupErrors(err error) []*hooks.CleanupError {
	var out []*hooks.CleanupError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ce, ok := e.(*hooks.CleanupError); ok {
			out = append(out, ce)
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			if _, ok := e.(*hooks.CleanupError); !ok {
				walk(u.Unwrap())
			}
		}
	}
	walk(err)
	return out
}

func TestAttack10StackNilCleanupRefused(t *testing.T) {
	for _, before := range []int{0, 1, 2} {
		var s hooks.Stack
		ran := 0
		for i := range before {
			if err := s.Push(fmt.Sprint(i), func(context.Context) error { ran++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Push(nil) after %d pushes panicked: %v", before, r)
				}
			}()
			err = s.Push("nil", nil)
		}()
		if err == nil {
			t.Errorf("Push of a nil cleanup after %d pushes: nil error", before)
		}
		var cerr error
		a10within(t, "Close", 5*time.Second, func() {
			defer func() {
				if r := recover(); r != nil {
					cerr = fmt.Errorf("Close panicked: %v", r)
				}
			}()
			cerr = s.Close(context.Background())
		})
		if cerr != nil {
			t.Errorf("Close after a refused nil cleanup (%d pushed): %v", before, cerr)
		}
		if ran != before {
			t.Errorf("%d of %d cleanups ran", ran, before)
		}
	}
}

// Push racing Close: each Push that returned nil runs exactly once; each
// that returned ErrClosed never runs; Push never blocks.
func TestAttack10StackPushRacesClose(t *testing.T) {
	for rep := range 300 {
		var s hooks.Stack
		const n = 8
		counts := make([]atomic.Int32, n)
		results := make([]error, n)
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGate
				results[i] = s.Push(fmt.Sprint(i), func(context.Context) error { counts[i].Add(1); return nil })
			}()
		}
		var closeErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			closeErr = s.Close(context.Background())
		}()
		close(startGate)
		a10within(t, "pushes and Close", 10*time.Second, wg.Wait)
		if closeErr != nil {
			t.Fatalf("rep %d: Close: %v", rep, closeErr)
		}
		// A second Close runs nothing more.
		_ = s.Close(context.Background())
		for i := range n {
			c := counts[i].Load()
			switch {
			case results[i] == nil && c != 1:
				t.Fatalf("rep %d: Push %d accepted, its cleanup ran %d times", rep, i, c)
			case results[i] != nil && !errors.Is(results[i], hooks.ErrClosed):
				t.Fatalf("rep %d: Push %d: %v", rep, i, results[i])
			case results[i] != nil && c != 0:
				t.Fatalf("rep %d: Push %d refused (%v) but its cleanup ran %d times", rep, i, results[i], c)
			}
		}
	}
}

// A cleanup that pushes onto its own closing stack: Push does not block;
// the pushed cleanup runs exactly once if Push returned nil, never if it
// returned an error.
func TestAttack10StackPushFromCleanup(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		var s hooks.Stack
		var inner atomic.Int32
		var pushErr error
		for i := range n {
			i := i
			_ = s.Push(fmt.Sprint(i), func(context.Context) error {
				if i == n-1 {
					pushErr = s.Push("inner", func(context.Context) error { inner.Add(1); return nil })
				}
				return nil
			})
		}
		a10within(t, "Close", 5*time.Second, func() { _ = s.Close(context.Background()) })
		a10within(t, "second Close", 5*time.Second, func() { _ = s.Close(context.Background()) })
		if pushErr == nil && inner.Load() != 1 {
			t.Errorf("n=%d: Push during Close accepted, ran %d times", n, inner.Load())
		}
		if pushErr != nil && inner.Load() != 0 {
			t.Errorf("n=%d: Push during Close refused (%v), ran %d times", n, pushErr, inner.Load())
		}
	}
}

// Close with a context that ends while a cleanup is stuck: it returns,
// naming the stuck one (ErrStuck and the context's cause) and those
// waiting behind it in order; after the stuck one returns they run, in
// order, each exactly once.
func TestAttack10StackStuck(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		for stuck := range n {
			var s hooks.Stack
			var mu sync.Mutex
			var ran []int
			release := make(chan struct{})
			all := make(chan struct{})
			var count atomic.Int32
			for i := range n {
				_ = s.Push(fmt.Sprintf("r%d", i), func(ctx context.Context) error {
					if i == stuck {
						<-release
					}
					mu.Lock()
					ran = append(ran, i)
					mu.Unlock()
					if count.Add(1) == int32(n) {
						close(all)
					}
					return nil
				})
			}
			cause := errors.New("a10 stop cause")
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(20*time.Millisecond, func() { cancel(cause) })
			var err error
			a10within(t, "Close past its context", 10*time.Second, func() { err = s.Close(ctx) })
			if !errors.Is(err, hooks.ErrStuck) {
				t.Errorf("n=%d stuck=%d: no ErrStuck: %v", n, stuck, err)
			}
			if !errors.Is(err, cause) {
				t.Errorf("n=%d stuck=%d: the context's cause is not in %v", n, stuck, err)
			}
			var found *hooks.CleanupError
			for _, ce := range a10cleanupErrors(err) {
				if errors.Is(ce, hooks.ErrStuck) {
					found = ce
				}
			}
			var wantWaiting []string
			for i := stuck - 1; i >= 0; i-- {
				wantWaiting = append(wantWaiting, fmt.Sprintf("r%d", i))
			}
			if found == nil || found.Name != fmt.Sprintf("r%d", stuck) || !slices.Equal(found.Waiting, wantWaiting) {
				t.Errorf("n=%d stuck=%d: stuck error %+v, want Name r%d Waiting %v", n, stuck, found, stuck, wantWaiting)
			}
			close(release)
			atkWait(t, "the rest of the stack", 10*time.Second, all)
			time.Sleep(5 * time.Millisecond)
			want := make([]int, n)
			for i := range n {
				want[i] = n - 1 - i
			}
			mu.Lock()
			if !slices.Equal(ran, want) {
				t.Errorf("n=%d stuck=%d: ran %v, want %v", n, stuck, ran, want)
			}
			mu.Unlock()
			cancel(nil)
		}
	}
}
