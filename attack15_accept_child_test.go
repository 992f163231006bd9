package fxpool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const a15ChildEnv = "FXPOOL_A15_ACCEPT_CHILD"

type (
	a15cStore  struct{}
	a15cWriter struct{}
	a15cConn   struct {
		l  *a5log
		id int
	}
	a15cBatch struct{}
)

func (c *a15cConn) Close(context.Context) error { c.l.add("close conn %d", c.id); return nil }

// a15childApp: pool "writer" (2 workers) and pool "batcher" (3 workers), whose
// Batch flushes through "writer" when it closes; both use the app-scoped
// store. An OnStart hook after them queues 20 tasks on "batcher". In mode
// "slowstart" each Conn takes 100 ms to open, one worker at a time.
func a15childApp(l *a5log, mode string) *fx.App {
	slow := mode == "slowstart"
	conc := 3
	if slow {
		conc = 1
	}
	return fx.New(
		fx.NopLogger,
		fxpool.Module,
		fx.StartTimeout(10*time.Second),
		fx.StopTimeout(5*time.Second),
		fx.Provide(func(lc fx.Lifecycle) *a15cStore {
			lc.Append(fx.StopHook(func() { l.add("close store") }))
			return &a15cStore{}
		}),
		workerpool.Provide[*a15cWriter]("writer",
			workerpool.Workers(2),
			workerpool.Resources(resources.PerWorker(func(_ *a15cStore, w resources.Worker) (*a15cWriter, func(), error) {
				l.add("open writer %d", w.ID)
				return &a15cWriter{}, func() { l.add("close writer %d", w.ID) }, nil
			})),
		),
		workerpool.Provide[*a15cBatch]("batcher",
			workerpool.Workers(3),
			workerpool.StartConcurrency(conc),
			workerpool.QueueSize(32),
			workerpool.Resources(
				resources.PerWorker(func(ctx context.Context, _ *a15cStore, w resources.Worker) (*a15cConn, error) {
					l.add("open conn %d", w.ID)
					if slow {
						select {
						case <-time.After(100 * time.Millisecond):
						case <-ctx.Done():
							return nil, ctx.Err()
						}
					}
					return &a15cConn{l: l, id: w.ID}, nil
				}),
				resources.PerWorker(func(_ *a15cConn, wp *workerpool.Pool[*a15cWriter], w resources.Worker) (*a15cBatch, func(context.Context) error, error) {
					l.add("open batch %d", w.ID)
					return &a15cBatch{}, func(ctx context.Context) error {
						err := wp.Do(ctx, func(context.Context, *a15cWriter) error { return nil })
						l.add("close batch %d err=%v", w.ID, err)
						return err
					}, nil
				}),
			),
		),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[*a15cBatch]) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				for k := range 20 {
					if err := p.Go(ctx, func(ctx context.Context, _ *a15cBatch) error {
						select {
						case <-time.After(15 * time.Millisecond):
							l.add("task %d", k)
						case <-ctx.Done():
							l.add("task %d cancelled", k)
						}
						return nil
					}); err != nil {
						return err
					}
				}
				l.add("started")
				return nil
			}))
		}),
	)
}

func TestAttack15AcceptChildEntry(t *testing.T) {
	mode := os.Getenv(a15ChildEnv)
	if mode == "" {
		t.Skip("child process entry")
	}
	f, err := os.OpenFile(os.Getenv("FXPOOL_A15_ACCEPT_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	l := &a5log{f: f}
	app := a15childApp(l, mode)
	_ = app.Wait() // install fx's signal relay before the start
	app.Run()
	l.add("run returned")
	os.Exit(0)
}

func a15runChild(t *testing.T, mode string, sig syscall.Signal, signalOn string) (int, string, []string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttack15AcceptChildEntry$")
	cmd.Env = append(os.Environ(), a15ChildEnv+"="+mode, "FXPOOL_A15_ACCEPT_LOG="+logPath,
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
	for !slices.Contains(read(), signalOn) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child never logged %q: %q\n%s", signalOn, read(), stderr.String())
		}
		time.Sleep(time.Millisecond)
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
		t.Fatalf("child did not exit after %v: %q", sig, read())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	}
	return code, stderr.String(), read()
}

// fx.New(...).Run() told to stop by a signal — once started, or while the
// start is still opening — closes everything exactly once: each Batch
// (flushing through the "writer" pool, which still serves) before its Conn,
// every "batcher" worker before any "writer" worker, the store last; every
// queued task runs once (Drain); exit status 0.
func TestAttack15AcceptSignalClosesEverythingOnceAcrossPools(t *testing.T) {
	for _, tc := range []struct {
		mode, on string
		sig      syscall.Signal
	}{
		{"started", "started", syscall.SIGINT},
		{"started", "started", syscall.SIGTERM},
		{"slowstart", "open conn 0", syscall.SIGTERM},
		{"slowstart", "open conn 0", syscall.SIGINT},
	} {
		t.Run(fmt.Sprintf("%s-%v", tc.mode, tc.sig), func(t *testing.T) {
			code, stderr, lines := a15runChild(t, tc.mode, tc.sig, tc.on)
			if code != 0 {
				t.Errorf("exit status %d; want 0\n%s", code, stderr)
			}
			idx := func(s string) int { return slices.Index(lines, s) }
			count := map[string]int{}
			for _, ln := range lines {
				count[ln]++
			}
			for _, ln := range lines {
				if r, ok := strings.CutPrefix(ln, "open "); ok {
					closes := 0
					for _, c := range lines {
						if c == "close "+r || strings.HasPrefix(c, "close "+r+" err=") {
							closes++
						}
					}
					if count[ln] != 1 || closes != 1 {
						t.Errorf("%s: opened %d times, closed %d times; want once each", r, count[ln], closes)
					}
				}
			}
			store := idx("close store")
			firstWriter := min(idx("close writer 0"), idx("close writer 1"))
			if store < 0 || firstWriter < 0 {
				t.Fatalf("store or writer never closed: %q", lines)
			}
			for w := range 3 {
				b := idx(fmt.Sprintf("close batch %d err=<nil>", w))
				c := idx(fmt.Sprintf("close conn %d", w))
				if b < 0 {
					t.Errorf("batch %d did not flush through the writer pool: %q", w, lines)
					continue
				}
				if c < b || firstWriter < c || store < c {
					t.Errorf("worker %d: batch at %d, conn at %d, first writer at %d, store at %d", w, b, c, firstWriter, store)
				}
			}
			if idx("close writer 0") > store || idx("close writer 1") > store {
				t.Errorf("a writer closed after the store: %q", lines)
			}
			for k := range 20 {
				if n := count[fmt.Sprintf("task %d", k)]; n != 1 {
					t.Errorf("task %d ran %d times; want once (Drain)", k, n)
				}
			}
			if idx("run returned") < 0 {
				t.Errorf("Run did not return")
			}
		})
	}
}
