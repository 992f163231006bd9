package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fxpool/fxpool/hooks"
)

// The operations of FuzzStack, one per input byte: opOf(b). Bit 3 makes a
// panic's value an error; bit 7 of the first byte closes with a context
// that cannot be canceled, unless something hangs.
const (
	opSucceed = iota // push a cleanup that returns nil
	opFail           // push a cleanup that returns an error
	opPanic          // push a cleanup that panics (with an error if bit 3 is set)
	opHang           // push a cleanup that cancels Close's context and hangs until released
	opClose          // close the stack (the first time); later pushes get ErrClosed
	opPushNil        // push a nil cleanup: refused
	numOps
)

func opOf(b byte) int { return int(b&7) % numOps }

// fuzzRun is one run of FuzzStack: what ran, in order, and how often.
type fuzzRun struct {
	mu      sync.Mutex
	ran     []int
	count   map[int]int
	release chan struct{} // closed once Close has returned: hanging cleanups go on
	allDone chan struct{} // closed when the first pushed cleanup has run
	cancel  context.CancelFunc
}

// cleanup returns the cleanup of the i-th pushed entry.
func (r *fuzzRun) cleanup(i int, b byte) hooks.Cleanup {
	return func(context.Context) error {
		r.mu.Lock()
		r.ran = append(r.ran, i)
		r.count[i]++
		r.mu.Unlock()
		if i == 0 {
			defer close(r.allDone) // runs last, even if it panics
		}
		switch opOf(b) {
		case opFail:
			return failure(i)
		case opPanic:
			if b&8 != 0 {
				panic(failure(i))
			}
			panic(fmt.Sprintf("panic %d", i))
		case opHang:
			r.cancel()
			<-r.release
		}
		return nil
	}
}

// failureErr is the error of the i-th cleanup; equal for equal i.
type failureErr int

func (e failureErr) Error() string { return fmt.Sprintf("failure %d", int(e)) }

func failure(i int) error { return failureErr(i) }

// FuzzStack pushes cleanups that succeed, fail, panic or hang, and closes
// the stack: every pushed cleanup runs exactly once, last pushed first; the
// joined error holds one error per failure and panic that happened before
// Close returned, plus one naming the stuck cleanup if one hung; a second
// Close is a no-op.
func FuzzStack(f *testing.F) {
	f.Add([]byte{opSucceed, opFail, opPanic})
	f.Add([]byte{opPanic | 8, opFail, opSucceed, opClose, opFail})
	f.Add([]byte{opFail, opHang, opFail, opPanic})
	f.Add([]byte{opHang, opHang, opSucceed})
	f.Add([]byte{opPushNil, opClose, opClose})
	f.Add([]byte{0x80 | opFail, opFail})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		var (
			s      hooks.Stack
			pushed []byte // the op of each pushed cleanup
			closed bool
			hangs  bool
		)
		for _, b := range ops {
			hangs = hangs || opOf(b) == opHang && !closed
			closed = closed || opOf(b) == opClose
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if !hangs && len(ops) > 0 && ops[0]&0x80 != 0 {
			ctx = context.Background() // Close runs the cleanups itself
		}
		r := &fuzzRun{
			count:   map[int]int{},
			release: make(chan struct{}),
			allDone: make(chan struct{}),
			cancel:  cancel,
		}

		closeStack := func() error {
			err := s.Close(ctx)
			close(r.release)
			if len(pushed) > 0 {
				<-r.allDone
			}
			return err
		}
		var (
			err      error
			didClose bool
		)
		for _, b := range ops {
			switch opOf(b) {
			case opClose:
				if didClose {
					if err := s.Close(ctx); err != nil {
						t.Errorf("another Close() = %v, want nil", err)
					}
					continue
				}
				err, didClose = closeStack(), true
			case opPushNil:
				if e := s.Push("nil", nil); e == nil {
					t.Error("Push(nil) = nil, want an error")
				}
			default:
				name := fmt.Sprintf("c%d", len(pushed))
				e := s.Push(name, r.cleanup(len(pushed), b))
				if didClose {
					if !errors.Is(e, hooks.ErrClosed) {
						t.Errorf("Push after Close = %v, want ErrClosed", e)
					}
					continue
				}
				if e != nil {
					t.Fatalf("Push(%s) = %v", name, e)
				}
				pushed = append(pushed, b)
			}
		}
		if !didClose {
			err = closeStack()
		}
		if e := s.Close(ctx); e != nil {
			t.Errorf("second Close() = %v, want nil", e)
		}
		if e := s.Push("late", func(context.Context) error { return nil }); !errors.Is(e, hooks.ErrClosed) {
			t.Errorf("Push() after Close = %v, want ErrClosed", e)
		}

		// Every cleanup ran exactly once, last pushed first.
		r.mu.Lock()
		defer r.mu.Unlock()
		want := make([]int, len(pushed))
		for i := range want {
			want[i] = len(pushed) - 1 - i
		}
		if !slices.Equal(r.ran, want) {
			t.Fatalf("ran %v, want %v", r.ran, want)
		}

		// The errors, in run order, up to and including a stuck cleanup.
		var (
			wantNames []string
			stuck     = -1
		)
		for _, i := range want {
			switch opOf(pushed[i]) {
			case opFail, opPanic:
				wantNames = append(wantNames, fmt.Sprintf("c%d", i))
			case opHang:
				stuck = i
			}
			if stuck >= 0 {
				wantNames = append(wantNames, fmt.Sprintf("c%d", i))
				break
			}
		}
		var errs []error
		if err != nil {
			errs = err.(interface{ Unwrap() []error }).Unwrap()
		}
		var gotNames []string
		for _, e := range errs {
			var ce *hooks.CleanupError
			if !errors.As(e, &ce) {
				t.Fatalf("joined error %v is not a *CleanupError", e)
			}
			gotNames = append(gotNames, ce.Name)
			var i int
			fmt.Sscanf(ce.Name, "c%d", &i)
			checkCleanupError(t, ce, pushed[i], i, want[slices.Index(want, i)+1:])
		}
		if !slices.Equal(gotNames, wantNames) {
			t.Errorf("Close() = %v: errors of %v, want %v", err, gotNames, wantNames)
		}
	})
}

// checkCleanupError checks the error of the i-th cleanup, made by op b,
// with the indices of the cleanups after it in run order.
func checkCleanupError(t *testing.T, ce *hooks.CleanupError, b byte, i int, after []int) {
	t.Helper()
	var pe *hooks.PanicError
	switch opOf(b) {
	case opFail:
		if ce.Err != failure(i) {
			t.Errorf("%s: error %v, want %v", ce.Name, ce.Err, failure(i))
		}
	case opPanic:
		wantValue := any(fmt.Sprintf("panic %d", i))
		if b&8 != 0 {
			wantValue = failure(i)
		}
		if !errors.As(ce, &pe) || pe.Value != wantValue || errors.Is(ce, failure(i)) != (b&8 != 0) {
			t.Errorf("%s: error %v, want a *PanicError of %v", ce.Name, ce.Err, wantValue)
		}
	case opHang:
		var waiting []string
		for _, j := range after {
			waiting = append(waiting, fmt.Sprintf("c%d", j))
		}
		if !errors.Is(ce, hooks.ErrStuck) || !errors.Is(ce, context.Canceled) || !slices.Equal(ce.Waiting, waiting) {
			t.Errorf("%s: error %v waiting %v, want ErrStuck, Canceled and waiting %v", ce.Name, ce.Err, ce.Waiting, waiting)
		}
	default:
		t.Errorf("%s: error %v from a cleanup that succeeded", ce.Name, ce.Err)
	}
}

// TestStuckCloseKeepsEarlierErrors is the regression test of a bug: when a
// cleanup hung past Close's context, Close returned only the stuck error and
// silently dropped the errors of the cleanups that had already failed.
func TestStuckCloseKeepsEarlierErrors(t *testing.T) {
	var (
		s       hooks.Stack
		boom    = errors.New("commit failed")
		release = make(chan struct{})
		allDone = make(chan struct{})
	)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mustPush(t, &s, "db", func(context.Context) error { close(allDone); return nil })
	mustPush(t, &s, "conn", func(context.Context) error {
		cancel() // the deadline passes while conn is closing
		<-release
		return nil
	})
	mustPush(t, &s, "batch", func(context.Context) error { return boom })

	err := s.Close(ctx)
	close(release)
	<-allDone

	if !errors.Is(err, boom) {
		t.Errorf("Close() = %v, want it to keep batch's error", err)
	}
	var ce *hooks.CleanupError
	if !errors.Is(err, hooks.ErrStuck) || !strings.Contains(err.Error(), "close conn: still running") {
		t.Errorf("Close() = %v, want conn stuck", err)
	}
	if errors.As(err, &ce) && ce.Name != "batch" {
		t.Errorf("first error names %s, want batch: errors in the order they happened", ce.Name)
	}
}
