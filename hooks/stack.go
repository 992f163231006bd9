package hooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fxpool/fxpool/internal/safe"
	"github.com/fxpool/fxpool/internal/stack"
)

// Unwind and Stuck are for fxpool's own machinery: package internal/stack
// reaches them.
func init() {
	stack.Register(
		func(s any, ctx context.Context) error { return s.(*Stack).unwindNow(ctx) },
		func(s any, cause error) error { return s.(*Stack).stuck(cause) },
	)
}

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

	// While and after closing:
	unwinding []entry // what is being closed
	current   int     // index of the cleanup running or next; -1 when done
	errs      []error // as they happened
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

// Close runs every pushed cleanup once, the last pushed first, and returns
// their errors joined. It keeps going past failures and panics.
//
// Close blocks until every cleanup has returned or ctx is done, whichever
// comes first. If ctx ends while a cleanup is still running, Close returns at
// once the errors of the cleanups that had already returned, joined with a
// [*CleanupError] that wraps [ErrStuck] and the context's cause and names
// the running cleanup and those behind it. The
// rest of the stack then runs in the background as the stuck cleanup
// returns, and its errors are dropped. Once ctx is done, cleanups that have
// not started still run, in order, with that ctx.
//
// A second Close is a no-op that returns nil.
func (s *Stack) Close(ctx context.Context) error {
	entries := s.take()
	if len(entries) == 0 {
		return nil
	}
	if ctx.Done() == nil {
		// Nothing can interrupt the wait, so there is no need for a goroutine.
		return s.unwind(ctx, entries)
	}
	done := make(chan error, 1)
	go func() { done <- s.unwind(ctx, entries) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done: // finished at the same moment: prefer the full answer
		return err
	default:
		return s.stuck(context.Cause(ctx))
	}
}

// unwindNow runs every pushed cleanup once, the last pushed first, on the
// calling goroutine, and returns their errors joined: Close without the
// bound on the wait. A second call, or a call after Close, is a no-op that
// returns nil. (internal/stack.Unwind)
func (s *Stack) unwindNow(ctx context.Context) error {
	entries := s.take()
	if len(entries) == 0 {
		return nil
	}
	return s.unwind(ctx, entries)
}

// stuck reports, while the stack is being closed, the errors of the
// cleanups that have returned, joined with a [*CleanupError] that wraps
// [ErrStuck] and cause and names the cleanup running now and those waiting
// behind it; only the errors so far once every cleanup has returned; nil
// before the stack is closed. It does not block. (internal/stack.Stuck)
func (s *Stack) stuck(cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current < 0 || s.current >= len(s.unwinding) {
		return errors.Join(s.errs...)
	}
	stuck := &CleanupError{
		Name: s.unwinding[s.current].name,
		Err:  fmt.Errorf("%w: %w", ErrStuck, cause),
	}
	for i := s.current - 1; i >= 0; i-- {
		stuck.Waiting = append(stuck.Waiting, s.unwinding[i].name)
	}
	return errors.Join(append(slices.Clone(s.errs), stuck)...)
}

// take closes the stack and returns what it held.
func (s *Stack) take() []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := s.entries
	s.entries, s.closed = nil, true
	if len(entries) > 0 {
		s.unwinding, s.current = entries, len(entries)-1
	}
	return entries
}

// unwind runs entries from last to first, recording progress for stuck,
// and returns their errors joined in the order they happened.
func (s *Stack) unwind(ctx context.Context, entries []entry) error {
	for i := len(entries) - 1; i >= 0; i-- {
		err := run(ctx, entries[i])
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, err)
		}
		s.current = i - 1
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// run calls one cleanup, turning a panic into an error.
func run(ctx context.Context, e entry) error {
	var err error
	if perr := safe.Call(func() { err = e.fn(ctx) }); perr != nil {
		err = perr
	}
	if err != nil {
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

// PanicError is a recovered panic: the value given to panic (Value) and
// the stack of the goroutine that panicked (Stack). Its Unwrap returns the
// value if it is an error, so that errors.Is sees through a panic(err). It
// is the one panic error of fxpool: workerpool.PanicError is the same type.
type PanicError = safe.PanicError
