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
	mu sync.Mutex
	// What was pushed; once closed, what the close runs. A worker of a
	// pool keeps one stack while idle, a hundred thousand of them at
	// times: the fields are few.
	entries []entry
	first   [1]entry // entries' first backing array: most stacks hold one
	closed  bool
	current int     // once closed: index of the cleanup running or next; -1 when done
	errs    []error // once closed: as they happened
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
		return pushError(name, errNilCleanup)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return pushError(name, ErrClosed)
	}
	if s.entries == nil {
		s.entries = s.first[:0]
	}
	s.entries = append(s.entries, entry{name: name, fn: cleanup})
	s.mu.Unlock()
	return nil
}

var errNilCleanup = errors.New("nil cleanup")

// pushError is the error of a push of name that failed with err. Apart, so
// that the first push onto a worker's stack, deep in its first open, needs
// a small frame.
//
//go:noinline
func pushError(name string, err error) error {
	return fmt.Errorf("hooks: push %q: %w", name, err)
}

// Close runs every pushed cleanup once, the last pushed first, and returns
// their errors joined. It keeps going past failures and panics.
//
// The cleanups run on a goroutine of Close's own. A cleanup that calls
// [runtime.Goexit] (t.FailNow, testify's require) is treated like one that
// panics: its error wraps [ErrGoexit], the cleanups behind it still run, and
// Close returns; the Goexit ends that goroutine only, never the caller's.
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
	// Even when nothing can interrupt the wait (ctx.Done() == nil), the
	// cleanups run on a goroutine of their own: a cleanup's Goexit ends it,
	// not the caller, and the deferred send still answers.
	done := make(chan error, 1)
	go func() {
		defer func() { done <- s.errsSoFar() }()
		s.unwind(ctx, entries)
	}()
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
// returns nil. A cleanup's runtime.Goexit ends the calling goroutine once
// the cleanups behind it have run: unwindNow then does not return.
// (internal/stack.Unwind)
func (s *Stack) unwindNow(ctx context.Context) error {
	entries := s.take()
	if len(entries) == 0 {
		return nil
	}
	s.unwind(ctx, entries)
	return s.errsSoFar()
}

// stuck reports, while the stack is being closed, the errors of the
// cleanups that have returned, joined with a [*CleanupError] that wraps
// [ErrStuck] and cause and names the cleanup running now and those waiting
// behind it; only the errors so far once every cleanup has returned; nil
// before the stack is closed. It does not block. (internal/stack.Stuck)
func (s *Stack) stuck(cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed || s.current < 0 || s.current >= len(s.entries) {
		return errors.Join(s.errs...)
	}
	stuck := &CleanupError{
		Name: s.entries[s.current].name,
		Err:  fmt.Errorf("%w: %w", ErrStuck, cause),
	}
	for i := s.current - 1; i >= 0; i-- {
		stuck.Waiting = append(stuck.Waiting, s.entries[i].name)
	}
	return errors.Join(append(slices.Clone(s.errs), stuck)...)
}

// take closes the stack and returns what it held, for the first close;
// nothing for a later one. The entries stay, for stuck.
func (s *Stack) take() []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed, s.current = true, len(s.entries)-1
	return s.entries
}

// unwind runs entries from last to first, recording their errors and its
// progress for stuck and errsSoFar.
func (s *Stack) unwind(ctx context.Context, entries []entry) {
	for i := len(entries) - 1; i >= 0; i-- {
		s.step(ctx, entries, i)
	}
}

// step runs entries[i] and records its outcome. A Goexit cannot be
// stopped: if the cleanup calls runtime.Goexit, step records ErrGoexit and
// runs the cleanups behind it from a deferred call, as the Goexit unwinds
// the goroutine, and the Goexit then goes on.
func (s *Stack) step(ctx context.Context, entries []entry, i int) {
	returned := false
	defer func() {
		if !returned { // run recovers panics: only a Goexit gets here
			s.record(i, &CleanupError{Name: entries[i].name, Err: ErrGoexit})
			s.unwind(ctx, entries[:i])
		}
	}()
	err := run(ctx, entries[i])
	returned = true
	s.record(i, err)
}

// record notes the outcome of entries[i]: err, if not nil, and that the
// next to run is entries[i-1].
func (s *Stack) record(i int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs = append(s.errs, err)
	}
	s.current = i - 1
}

// errsSoFar returns the errors recorded so far, joined in the order they
// happened.
func (s *Stack) errsSoFar() error {
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

// ErrGoexit is the error of a cleanup that called [runtime.Goexit].
var ErrGoexit = errors.New("called runtime.Goexit")

// CleanupError is the error of one cleanup. It names the resource.
type CleanupError struct {
	// Name is the name the cleanup was pushed with.
	Name string
	// Err is what the cleanup returned, a [*PanicError], [ErrGoexit], or,
	// for a cleanup still running when the context ended, an error wrapping
	// [ErrStuck].
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
