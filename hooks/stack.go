package hooks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// A Cleanup releases one resource. It receives the context given to
// [Stack.Close] and should return promptly once that context is done.
type Cleanup func(context.Context) error

// Stack is a last-in, first-out stack of named cleanups.
//
// The zero value is an empty stack ready for use. A Stack is safe for
// concurrent use, although one owner usually pushes and closes.
type Stack struct {
	mu      sync.Mutex
	entries []entry
	closed  bool
}

type entry struct {
	name string
	fn   Cleanup
}

// Push adds a cleanup named after the resource it releases. It does not
// block. Pushing onto a stack that is already closed runs nothing and returns
// [ErrClosed]: the caller still owns the resource.
func (s *Stack) Push(name string, cleanup Cleanup) error {
	if cleanup == nil {
		return fmt.Errorf("hooks: push %q: nil cleanup", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("hooks: push %q: %w", name, ErrClosed)
	}
	s.entries = append(s.entries, entry{name: name, fn: cleanup})
	return nil
}

// Len reports how many cleanups are waiting to run.
func (s *Stack) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Close runs every pushed cleanup once, the last pushed first, and returns
// their errors joined. It keeps going past failures and panics.
//
// Close blocks until every cleanup has returned or ctx is done, whichever
// comes first. If ctx ends while a cleanup is still running, Close returns at
// once with the errors of the cleanups that had already returned, joined with
// an error that wraps [ErrStuck] and the context's cause, and names the running
// cleanup and those behind it; the rest of the stack then runs in the
// background as the stuck cleanup returns, and its errors are dropped. Once ctx is done, cleanups that
// have not started still run, in order, with that ctx.
//
// A second Close is a no-op that returns nil.
func (s *Stack) Close(ctx context.Context) error {
	s.mu.Lock()
	entries := s.entries
	s.entries, s.closed = nil, true
	s.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	if ctx.Done() == nil {
		// Nothing can interrupt the wait, so there is no need for a goroutine.
		return errors.Join(runAll(ctx, entries)...)
	}

	var (
		mu      sync.Mutex
		current = len(entries) - 1 // the cleanup running or next, -1 when done; guarded by mu
		errs    []error            // as they happen, guarded by mu
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := len(entries) - 1; i >= 0; i-- {
			err := run(ctx, entries[i])
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			}
			current = i - 1
			mu.Unlock()
		}
	}()
	select {
	case <-done:
		return errors.Join(errs...)
	case <-ctx.Done():
	}
	select {
	case <-done: // finished at the same moment: prefer the full answer
		return errors.Join(errs...)
	default:
	}

	mu.Lock()
	defer mu.Unlock()
	if current < 0 { // every cleanup has returned
		return errors.Join(errs...)
	}
	stuck := &CleanupError{
		Name: entries[current].name,
		Err:  fmt.Errorf("%w: %w", ErrStuck, context.Cause(ctx)),
	}
	if current > 0 {
		waiting := make([]string, 0, current)
		for i := current - 1; i >= 0; i-- {
			waiting = append(waiting, entries[i].name)
		}
		stuck.Waiting = waiting
	}
	return errors.Join(append(errs, stuck)...)
}

// runAll runs entries from last to first and returns the errors in the order
// they happened.
func runAll(ctx context.Context, entries []entry) []error {
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		if err := run(ctx, entries[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// run calls one cleanup, turning a panic into an error.
func run(ctx context.Context, e entry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &CleanupError{Name: e.name, Err: &PanicError{Value: r, Stack: debug.Stack()}}
		}
	}()
	if err := e.fn(ctx); err != nil {
		return &CleanupError{Name: e.name, Err: err}
	}
	return nil
}

// ErrClosed is returned by [Stack.Push] on a stack that was already closed.
var ErrClosed = errors.New("hooks: stack closed")

// ErrStuck is wrapped by the error of a cleanup that was still running when
// the context given to [Stack.Close] ended.
var ErrStuck = errors.New("still running")

// CleanupError is the error of one cleanup. It names the resource.
type CleanupError struct {
	// Name is the name the cleanup was pushed with.
	Name string
	// Err is what the cleanup returned, a [*PanicError], or, for a cleanup
	// still running when the context ended, an error wrapping [ErrStuck].
	Err error
	// Waiting names, in the order they will run, the cleanups that were
	// still waiting behind a stuck one.
	Waiting []string
}

func (e *CleanupError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "close %s: %v", e.Name, e.Err)
	if len(e.Waiting) > 0 {
		fmt.Fprintf(&b, " (waiting behind it: %s)", strings.Join(e.Waiting, ", "))
	}
	return b.String()
}

func (e *CleanupError) Unwrap() error { return e.Err }

// PanicError is a recovered panic: the value given to panic and the stack of
// the goroutine that panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error, so that errors.Is sees
// through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
