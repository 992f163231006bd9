package fxpool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const a5ChildEnv = "FXPOOL_A5_CHILD"

type a5log struct {
	mu sync.Mutex
	f  *os.File
}

func (l *a5log) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, format+"\n", args...)
}

type (
	C5Conn  struct{}
	C5Batch struct{}
	C5Deps  struct {
		fx.In
		B *C5Batch
		W resources.Worker
	}
)

// a5childApp: 3 workers, each with a Conn and a Batch on it. Modes:
//   - "clean": Batch cleanups honour their context.
//   - "hang": worker 1's Batch cleanup ignores its context for 30 s.
//   - "guard": a hook that stops before the pool sleeps past the whole stop
//     budget, ignoring its context; StopGuard is given last.
func a5childApp(l *a5log, mode string) *fx.App {
	opts := []fx.Option{
		fxpool.Module,
		fx.StartTimeout(5 * time.Second),
		fx.StopTimeout(1 * time.Second),
		fx.Provide(func(lc fx.Lifecycle) *a5Store {
			lc.Append(fx.StopHook(func() { l.add("close store") }))
			return &a5Store{}
		}),
		workerpool.Provide[C5Deps]("childpool",
			workerpool.Workers(3),
			workerpool.Resources(
				resources.PerWorker(func(_ *a5Store, w resources.Worker) (*C5Conn, func(), error) {
					l.add("open conn %d.%d", w.ID, w.Generation)
					return &C5Conn{}, func() { l.add("close conn %d.%d", w.ID, w.Generation) }, nil
				}),
				resources.PerWorker(func(_ *C5Conn, w resources.Worker) (*C5Batch, func(context.Context) error, error) {
					l.add("open batch %d.%d", w.ID, w.Generation)
					return &C5Batch{}, func(ctx context.Context) error {
						if mode == "hang" && w.ID == 1 {
							time.Sleep(30 * time.Second)
						}
						l.add("close batch %d.%d", w.ID, w.Generation)
						return nil
					}, nil
				}, resources.Name("the-batch")),
			),
		),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[C5Deps]) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				// every worker busy with a task that ends with its context
				for range 3 {
					if err := p.Go(ctx, func(ctx context.Context, d C5Deps) error {
						l.add("task on %d", d.W.ID)
						<-ctx.Done()
						l.add("task end %d: %v", d.W.ID, context.Cause(ctx))
						return nil
					}); err != nil {
						return err
					}
				}
				l.add("started")
				return nil
			}))
			if mode == "guard" {
				lc.Append(fx.StopHook(func() {
					l.add("slow hook begins")
					time.Sleep(2 * time.Second)
					l.add("slow hook ends")
				}))
			}
		}),
	}
	if mode == "guard" {
		opts = append(opts, workerpool.StopGuard())
	}
	return fx.New(opts...)
}

type a5Store struct{}

func a5child() {
	mode := os.Getenv(a5ChildEnv)
	f, err := os.OpenFile(os.Getenv("FXPOOL_A5_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	l := &a5log{f: f}
	app := a5childApp(l, mode)
	// Install fx's signal relay before Start: a signal that arrives while
	// the start hooks run (after "started" is logged, before Run calls
	// Wait) would otherwise kill the process with Go's default action.
	// fx keeps the last signal for Run's own Wait.
	_ = app.Wait()
	app.Run()
	l.add("run returned")
	os.Exit(0)
}

// a5runChild runs the child in mode, sends sig once it has started, and
// returns its exit code, stderr and log lines.
func a5runChild(t *testing.T, mode string, sig syscall.Signal) (int, string, []string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttack5_ChildEntry$")
	// Under -race a process sleeps for a second as it exits unless told
	// not to.
	cmd.Env = append(os.Environ(), a5ChildEnv+"="+mode, "FXPOOL_A5_LOG="+logPath,
		strings.TrimSpace("GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE")))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := func() []string {
		b, _ := os.ReadFile(logPath)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines := read()
		started := 0
		for _, ln := range lines {
			if ln == "started" || strings.HasPrefix(ln, "task on") {
				started++
			}
		}
		if started == 4 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child never started: %q\n%s", lines, stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("child did not exit after %v", sig)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	}
	return code, stderr.String(), read()
}

func TestAttack5_ChildEntry(t *testing.T) {
	if os.Getenv(a5ChildEnv) == "" {
		t.Skip("child process entry")
	}
	a5child()
}

// a5balance checks that each opened resource closed exactly once, except
// those listed in open, and that each close is after its open.
func a5balance(t *testing.T, lines []string, stillOpen ...string) {
	t.Helper()
	opened := map[string]int{}
	closed := map[string]int{}
	for _, ln := range lines {
		if r, ok := strings.CutPrefix(ln, "open "); ok {
			opened[r]++
		}
		if r, ok := strings.CutPrefix(ln, "close "); ok {
			if r != "store" && opened[r] == 0 {
				t.Errorf("%s closed before it opened", r)
			}
			closed[r]++
		}
	}
	for r, n := range opened {
		want := 1
		for _, s := range stillOpen {
			if s == r {
				want = 0
			}
		}
		if n != 1 || closed[r] != want {
			t.Errorf("%s: opened %d, closed %d, want closed %d", r, n, closed[r], want)
		}
	}
	for r, n := range closed {
		if opened[r] == 0 && r != "store" {
			t.Errorf("%s closed %d times, never opened", r, n)
		}
	}
}

func a5index(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}

// App.Run, SIGTERM and SIGINT while every worker runs a task: the tasks'
// contexts end with ErrClosed, every resource closes exactly once, batch
// before conn in each worker, the store after every worker; exit status 0.
func TestAttack5_RunSignalClosesEverythingOnce(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		code, stderr, lines := a5runChild(t, "clean", sig)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", sig, code, stderr)
		}
		a5balance(t, lines)
		store := a5index(lines, "close store")
		for w := range 3 {
			b, c := a5index(lines, fmt.Sprintf("close batch %d.0", w)), a5index(lines, fmt.Sprintf("close conn %d.0", w))
			if b < 0 || c < 0 || b > c || c > store {
				t.Errorf("%v: worker %d: batch %d conn %d store %d: %q", sig, w, b, c, store, lines)
			}
			if a5index(lines, fmt.Sprintf("task end %d: %v", w, workerpool.ErrClosed)) < 0 {
				t.Errorf("%v: worker %d's task did not end with cause ErrClosed: %q", sig, w, lines)
			}
		}
		if a5index(lines, "run returned") < 0 {
			t.Errorf("%v: Run did not return", sig)
		}
	}
}

// A cleanup that ignores its context under App.Run: "A task or cleanup that
// ignores its context does not hold the stop past nine tenths: the stop
// returns an error naming the worker and what it is stuck in", said on
// standard error (no *zap.Logger); the other workers' resources and the
// store still close; fx exits 1.
func TestAttack5_RunHungCleanupNamesTheCulprit(t *testing.T) {
	code, stderr, lines := a5runChild(t, "hang", syscall.SIGTERM)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// worker 1's batch is stuck and its conn waits behind it
	a5balance(t, lines, "batch 1.0", "conn 1.0")
	if a5index(lines, "close store") < 0 {
		t.Errorf("the store was not closed: the pool left it no time: %q", lines)
	}
	found := false
	for _, ln := range strings.Split(stderr, "\n") {
		if strings.Contains(ln, "childpool") && strings.Contains(ln, "worker 1") && strings.Contains(ln, "the-batch") {
			found = true
		}
	}
	if !found {
		t.Errorf("no stderr line names pool, worker 1 and the-batch:\n%s", stderr)
	}
	t.Logf("stderr:\n%s\nlog: %q", stderr, lines)
}

// StopGuard under App.Run and SIGTERM: a hook stopping before the pool uses
// up the budget; "once app.Stop has returned the pool refuses tasks and its
// resources are closed". fx then skips the store's hook (documented) and
// exits 1.
func TestAttack5_RunStopGuardClosesThePool(t *testing.T) {
	code, stderr, lines := a5runChild(t, "guard", syscall.SIGTERM)
	if code != 1 {
		t.Errorf("exit %d, want 1 (fx's stop ran out of budget)\n%s", code, stderr)
	}
	a5balance(t, lines)
	for w := range 3 {
		if a5index(lines, fmt.Sprintf("close batch %d.0", w)) < 0 {
			t.Errorf("worker %d's batch not closed: %q", w, lines)
		}
	}
	t.Logf("log: %q", lines)
}
