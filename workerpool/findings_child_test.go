package workerpool_test

// Findings of issue 9 that need a process of their own: the test binary
// runs itself again with FXPOOL_FINDINGS_CHILD=<program>, and init runs
// that program (a real fx app) instead of the tests. The parent asserts
// on the child's exit code, stdout and stderr.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const fndChildEnv = "FXPOOL_FINDINGS_CHILD"

// fndChildren are the programs a child may run. Each either exits itself
// (fx's Run does on a failed start) or returns, and the child exits 0.
var fndChildren = map[string]func(){
	"startbudget":      fndChildStartBudget,
	"stopbudget":       fndChildStopBudget,
	"panic-errhandler": fndChildPanicErrorHandler,
	"panic-ondropped":  fndChildPanicOnDropped,
	"panic-events":     fndChildPanicEvents,
	"silent-restarts":  fndChildSilentRestarts,
	"silent-taskerror": fndChildSilentTaskError,
}

func init() {
	name := os.Getenv(fndChildEnv)
	if name == "" {
		return
	}
	run, ok := fndChildren[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no child program %q\n", name)
		os.Exit(3)
	}
	run()
	os.Exit(0)
}

// fndChild is a running child process.
type fndChild struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout []string // lines so far
	lines  chan string
	stderr bytes.Buffer
	copied chan struct{}
}

// fndStartChild starts the test binary as the named child program.
func fndStartChild(t *testing.T, name string) *fndChild {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*fndHang)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fndChildEnv+"="+name)
	c := &fndChild{cmd: cmd, lines: make(chan string, 1024), copied: make(chan struct{})}
	cmd.Stderr = &c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.copied)
		s := bufio.NewScanner(out)
		for s.Scan() {
			c.mu.Lock()
			c.stdout = append(c.stdout, s.Text())
			c.mu.Unlock()
			select {
			case c.lines <- s.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return c
}

// waitFor waits for a line of stdout, up to fndHang.
func (c *fndChild) waitFor(t *testing.T, line string) {
	t.Helper()
	timer := time.NewTimer(fndHang)
	defer timer.Stop()
	for {
		select {
		case l := <-c.lines:
			if l == line {
				return
			}
		case <-timer.C:
			t.Fatalf("the child never printed %q", line)
		}
	}
}

// wait waits for the child to exit and returns its exit code, stdout lines
// and stderr.
func (c *fndChild) wait(t *testing.T) (code int, stdout []string, stderr string) {
	t.Helper()
	<-c.copied
	err := c.cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("child: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return code, append([]string(nil), c.stdout...), c.stderr.String()
}

func fndCount(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// 1. The start budget, with fx.StartTimeout and app.Run.

func fndChildStartBudget() {
	fx.New(
		fx.StartTimeout(300*time.Millisecond),
		workerpool.Provide[*fndRes]("budgetpool",
			workerpool.Workers(4),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context, w resources.Worker) (*fndRes, func(), error) {
				if w.ID == 3 {
					<-ctx.Done()
					return nil, nil, context.Cause(ctx)
				}
				fmt.Println("opened", w.ID)
				return &fndRes{id: w.ID}, func() { fmt.Println("closed", w.ID) }, nil
			})),
		),
		fx.Invoke(func(*workerpool.Pool[*fndRes]) {}),
	).Run()
	fmt.Println("Run returned")
}

func TestFindingsStartBudgetRun(t *testing.T) {
	code, stdout, stderr := fndStartChild(t, "startbudget").wait(t)
	t.Run("ExitsNonZero", func(t *testing.T) {
		if code == 0 {
			t.Errorf("exit code 0, want non-zero: the start timed out\nstdout: %q\nstderr:\n%s", stdout, stderr)
		}
	})
	t.Run("EveryOpenedResourceClosed", func(t *testing.T) {
		opened, closed := fndCount(stdout, "opened "), fndCount(stdout, "closed ")
		if opened != 3 || closed != 3 {
			t.Errorf("%d opened, %d closed before the process exited, want 3 and 3\nstdout: %q\nstderr:\n%s", opened, closed, stdout, stderr)
		}
	})
}

// 2. The stop budget, with fx.StopTimeout, app.Run and SIGTERM: every
// worker's 60ms flush completes although 50ms tasks are still queued.

func fndChildStopBudget() {
	app := fx.New(
		fx.NopLogger,
		fx.StopTimeout(400*time.Millisecond),
		workerpool.Provide[*fndRes]("flushing",
			workerpool.Workers(2),
			workerpool.QueueSize(64),
			workerpool.ErrorHandler(func(error) {}),
			workerpool.Resources(resources.PerWorker(func(w resources.Worker) (*fndRes, func(context.Context) error, error) {
				return &fndRes{id: w.ID}, func(ctx context.Context) error {
					timer := time.NewTimer(60 * time.Millisecond)
					defer timer.Stop()
					select {
					case <-timer.C:
						fmt.Println("flushed", w.ID)
						return nil
					case <-ctx.Done():
						fmt.Println("flush cut", w.ID, context.Cause(ctx))
						return ctx.Err()
					}
				}, nil
			})),
		),
		fx.Invoke(func(p *workerpool.Pool[*fndRes], lc fx.Lifecycle) {
			lc.Append(fx.StartHook(func() error {
				for range 42 {
					if err := p.Go(context.Background(), func(context.Context, *fndRes) error {
						time.Sleep(50 * time.Millisecond)
						return nil
					}); err != nil {
						return err
					}
				}
				return nil
			}))
		}),
	)
	// What app.Run does, with "ready" printed once fx listens for signals
	// (Run gives no such moment: a SIGTERM before it would kill the child).
	startCtx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(1)
	}
	done := app.Wait()
	fmt.Println("ready")
	sig := <-done
	stopCtx, cancelStop := context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "stop:", err)
		os.Exit(1)
	}
	os.Exit(sig.ExitCode)
}

func TestFindingsStopBudgetRun(t *testing.T) {
	c := fndStartChild(t, "stopbudget")
	c.waitFor(t, "ready")
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := c.wait(t)
	t.Run("EveryFlushCompletes", func(t *testing.T) {
		if n := fndCount(stdout, "flushed "); n != 2 {
			t.Errorf("%d of 2 flushes completed\nstdout: %q\nstderr:\n%s", n, stdout, stderr)
		}
	})
	t.Run("ExitsZero", func(t *testing.T) {
		if code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0\nstderr:\n%s", code, stderr)
		}
	})
}

// 4. A panic in a user callback does not kill the process.

// fndChildApp starts an app with one pool of R named "callbacks" and
// returns it with a stop func. It exits 4 if the app does not start.
func fndChildApp[R any](opts ...workerpool.Option) (*workerpool.Pool[R], func() error) {
	var p *workerpool.Pool[R]
	app := fx.New(fx.NopLogger, workerpool.Provide[R]("callbacks", opts...), fx.Populate(&p))
	ctx, cancel := context.WithTimeout(context.Background(), fndHang)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(4)
	}
	return p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), fndHang)
		defer cancel()
		return app.Stop(ctx)
	}
}

func fndChildPanicErrorHandler() {
	p, stop := fndChildApp[resources.Worker](workerpool.Workers(1),
		workerpool.ErrorHandler(func(error) { panic("ErrorHandler panics") }))
	ctx, cancel := context.WithTimeout(context.Background(), fndHang)
	defer cancel()
	_ = p.Go(ctx, func(context.Context, resources.Worker) error { return errors.New("task failed") })
	if err := p.Do(ctx, fndNop[resources.Worker]); err != nil {
		fmt.Println("later Do:", err)
		return
	}
	fmt.Println("served")
	_ = stop()
	fmt.Println("survived")
}

func fndChildPanicOnDropped() {
	p, stop := fndChildApp[resources.Worker](workerpool.Workers(1),
		workerpool.OnStop(workerpool.Cancel),
		workerpool.OnDropped(func(_ context.Context, _ func(context.Context, resources.Worker) error) { panic("OnDropped panics") }))
	ctx, cancel := context.WithTimeout(context.Background(), fndHang)
	defer cancel()
	started := make(chan struct{})
	_ = p.Go(ctx, func(ctx context.Context, _ resources.Worker) error {
		close(started)
		<-ctx.Done()
		return nil
	})
	<-started
	f, err := workerpool.Submit(ctx, p, func(context.Context, resources.Worker) (int, error) { return 1, nil })
	if err != nil {
		fmt.Println("Submit:", err)
		return
	}
	_ = stop()
	// The pool cannot serve after its stop: the submitter must still be told.
	if _, err := f.Wait(ctx); errors.Is(err, workerpool.ErrClosed) {
		fmt.Println("served")
	} else {
		fmt.Println("dropped task: Wait:", err)
	}
	fmt.Println("survived")
}

func fndChildPanicEvents() {
	p, stop := fndChildApp[*fndRes](workerpool.Workers(1),
		workerpool.Events(func(workerpool.Event) { panic("Events panics") }),
		workerpool.Resources(resources.PerWorker(func() *fndRes { return &fndRes{} })))
	ctx, cancel := context.WithTimeout(context.Background(), fndHang)
	defer cancel()
	// A rebuild makes more events.
	_ = p.Do(ctx, func(context.Context, *fndRes) error { return resources.ErrBroken })
	if err := p.Do(ctx, fndNop[*fndRes]); err != nil {
		fmt.Println("later Do:", err)
		return
	}
	fmt.Println("served")
	_ = stop()
	fmt.Println("survived")
}

func TestFindingsUserCallbackPanics(t *testing.T) {
	for _, tt := range []struct{ name, child string }{
		{"ErrorHandler", "panic-errhandler"},
		{"OnDropped", "panic-ondropped"},
		{"Events", "panic-events"},
	} {
		t.Run(tt.name+"/ProcessSurvives", func(t *testing.T) {
			code, stdout, stderr := fndStartChild(t, tt.child).wait(t)
			if code != 0 || fndCount(stdout, "served") != 1 || fndCount(stdout, "survived") != 1 {
				t.Errorf("exit code %d, stdout %q, want 0 and served, survived: a panic in %s killed the process\nstderr:\n%.2000s",
					code, stdout, tt.name, stderr)
			}
		})
	}
}

// 11. Silent without a logger.

func fndChildSilentRestarts() {
	fx.New(
		fx.NopLogger, // and no *zap.Logger: the README's quick start
		workerpool.Provide[resources.Worker]("silentpool",
			workerpool.Workers(1),
			workerpool.MaxRestarts(1, time.Minute)),
		fx.Invoke(func(p *workerpool.Pool[resources.Worker], lc fx.Lifecycle) {
			lc.Append(fx.StartHook(func(ctx context.Context) error {
				for range 3 {
					if err := p.Go(ctx, func(context.Context, resources.Worker) error { panic("task panics") }); err != nil {
						return err
					}
				}
				return nil
			}))
		}),
	).Run()
	fmt.Println("Run returned")
}

func fndChildSilentTaskError() {
	p, stop := fndChildApp[resources.Worker](workerpool.Workers(1))
	ctx, cancel := context.WithTimeout(context.Background(), fndHang)
	defer cancel()
	_ = p.Go(ctx, func(context.Context, resources.Worker) error { return errors.New("fnd-unique-task-error-7f3a") })
	_ = p.Do(ctx, fndNop[resources.Worker]) // one worker: the error was handled
	_ = stop()
}

func TestFindingsSilentWithoutLogger(t *testing.T) {
	t.Run("MaxRestarts/ExitsNonZero", func(t *testing.T) {
		code, stdout, stderr := fndStartChild(t, "silent-restarts").wait(t)
		if code == 0 {
			t.Errorf("exit code 0, want non-zero: the pool failed\nstdout: %q\nstderr:\n%s", stdout, stderr)
		}
		t.Run("StderrNamesPoolAndRestarts", func(t *testing.T) {
			if !strings.Contains(stderr, "silentpool") || !strings.Contains(stderr, "restarts") {
				t.Errorf("stderr %q, want it to name the pool %q and say %q", stderr, "silentpool", "restarts")
			}
		})
	})
	t.Run("TaskError/OnStderr", func(t *testing.T) {
		code, stdout, stderr := fndStartChild(t, "silent-taskerror").wait(t)
		if code != 0 {
			t.Fatalf("exit code %d\nstdout: %q\nstderr:\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "fnd-unique-task-error-7f3a") {
			t.Errorf("stderr %q, want the error of the task of Go", stderr)
		}
	})
}
