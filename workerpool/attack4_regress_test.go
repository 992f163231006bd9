package workerpool_test

// Round 4 of adversarial tests: the three that failed, each a documented
// promise that did not hold, kept as regression tests of their fixes.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fxpool/fxpool/workerpool"
)

// a4TagCtx is a context type of a program's own, passed by value, that Go
// cannot compare with ==: a slice field makes it uncomparable.
type a4TagCtx struct {
	context.Context
	tags []string
}

func (c a4TagCtx) Value(key any) any {
	if key == (a4Key{}) {
		return c.tags[0]
	}
	return c.Context.Value(key)
}

// TestAttack4UncomparableContext: any context.Context is a valid context
// to submit with, including a struct passed by value that == cannot
// compare (comparing two such interface values panics). Tasks of such
// contexts, one after another on one worker, run with their own values,
// through every API, and the worker is not killed.
func TestAttack4UncomparableContext(t *testing.T) {
	if os.Getenv("A4_UNCMP_CHILD") == "" {
		// The bug kills the process: run the test in a child.
		for api := range 6 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestAttack4UncomparableContext$", "-test.v")
			cmd.Env = append(os.Environ(), fmt.Sprintf("A4_UNCMP_CHILD=%d", api))
			out, err := cmd.CombinedOutput()
			if err != nil {
				lines := strings.Split(string(out), "\n")
				for _, l := range lines {
					if strings.Contains(l, "panic:") || strings.Contains(l, "worker.go") || strings.Contains(l, "Error") || strings.Contains(l, "attack4_") {
						t.Log(l)
					}
				}
				t.Errorf("API %d: the child failed: %v", api, err)
			}
		}
		return
	}
	var only int
	fmt.Sscan(os.Getenv("A4_UNCMP_CHILD"), &only)
	p, _ := atkStart[W](t, "a4uncmp", workerpool.Workers(1), workerpool.ErrorHandler(func(error) {}))
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 40 {
		base := context.Background()
		if i%2 == 0 {
			base = cancellable
		}
		want := fmt.Sprintf("tag-%d", i)
		ctx := a4TagCtx{base, []string{want}}
		api := only
		var err error
		pan, _ := a3Call(t, "submit", func() error {
			task := func(tctx context.Context, _ W) error {
				if got := tctx.Value(a4Key{}); got != want {
					return fmt.Errorf("value %v, want %s", got, want)
				}
				return nil
			}
			if api == 5 {
				done := make(chan error, 1)
				if err := p.Go(ctx, func(c context.Context, w W) error { e := task(c, w); done <- e; return e }); err != nil {
					return err
				}
				within(t, "Go task", func() { err = <-done })
				return err
			}
			err = a4Submit(p, api, ctx, task)
			return err
		})
		if pan != nil {
			t.Fatalf("task %d: the submission panicked: %v", i, pan)
		}
		if err != nil {
			name := "Go"
			if api < 5 {
				name = a4APIs[api]
			}
			t.Errorf("task %d (%s): %v", i, name, err)
		}
	}
	if s := p.Stats(); s.Panics != 0 || s.Restarts != 0 {
		t.Errorf("stats %+v: the worker panicked", s)
	}
}

// TestAttack4GoexitInConstructorNamesTheResource: README, "a panic or
// Goexit in a constructor or cleanup is an error naming the resource", and
// "every resource whose open succeeded is closed exactly once". A
// constructor that calls runtime.Goexit (t.FailNow, testify's require)
// fails the start with an error that names no resource and is no
// *resources.OpenError, and the resource its worker opened before it is
// never closed ("resources it left open are abandoned").
func TestAttack4GoexitInConstructorNamesTheResource(t *testing.T) {
	a4CtorFailure(t, "goexit")
}

// TestAttack4GoexitInRebuildConstructor: the same on a rebuild after
// ErrBroken: no failed WorkerOpened event names the resource, and the
// resource opened before it in that try is never closed.
func TestAttack4GoexitInRebuildConstructor(t *testing.T) {
	a4RebuildFailure(t, "goexit")
}
