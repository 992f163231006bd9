package workerpool_test

// Round 3 of adversarial tests: real programs, fx.New(...).Run() in a child
// process (the test binary run again with FXPOOL_A3_CHILD=<program>),
// stopped by a signal, a failed pool or a Shutdown, with tight budgets. The
// child journals every open and close in a file, one write per line, so
// that the journal survives os.Exit; the parent checks it, the exit code
// and standard error.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const (
	a3ChildEnv = "FXPOOL_A3_CHILD"
	a3LogEnv   = "FXPOOL_A3_LOG"
)

var a3Children = map[string]func(*a3Journal){
	"signal":      a3ChildSignal,
	"maxrestarts": a3ChildMaxRestarts,
	"hungclose":   a3ChildHungClose,
	"failopen":    a3ChildFailOpen,
	"shutdown":    a3ChildShutdownFromTask,
	"reportpanic": a3ChildReportPanic,
	"checkpanic":  a3ChildCheckPanic,
}

func init() {
	name := os.Getenv(a3ChildEnv)
	if name == "" {
		return
	}
	run, ok := a3Children[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no child program %q\n", name)
		os.Exit(3)
	}
	f, err := os.OpenFile(os.Getenv(a3LogEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	run(&a3Journal{f: f})
	os.Exit(0)
}

// a3Journal appends one line per write: it survives os.Exit.
type a3Journal struct {
	mu sync.Mutex
	f  *os.File
}

func (j *a3Journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, _ = j.f.WriteString(fmt.Sprintf(format, args...) + "\n")
}

// The child's resources: per worker, A then B (B depends on A); the app's
// Store, closed by its own OnStop, after the pool.
type (
	A3A     struct{}
	A3B     struct{}
	A3Store struct{}
	A3Deps  struct {
		fx.In
		B *A3B
		W resources.Worker
	}
)

type a3IDKey struct{}

// a3Res declares A and B, journalled as "open A w<id>g<gen>"; hook lets a
// program make B's open or close misbehave.
func a3Res(j *a3Journal, openB func(context.Context, resources.Worker) error, closeB func(resources.Worker)) workerpool.Option {
	return workerpool.Resources(
		resources.PerWorker(func(_ *A3Store, w resources.Worker) (*A3A, func(), error) {
			j.add("open A w%dg%d", w.ID, w.Generation)
			return &A3A{}, func() { j.add("close A w%dg%d", w.ID, w.Generation) }, nil
		}),
		resources.PerWorker(func(ctx context.Context, _ *A3A, w resources.Worker) (*A3B, func(), error) {
			if openB != nil {
				if err := openB(ctx, w); err != nil {
					return nil, nil, err
				}
			}
			j.add("open B w%dg%d", w.ID, w.Generation)
			return &A3B{}, func() {
				if closeB != nil {
					closeB(w)
				}
				j.add("close B w%dg%d", w.ID, w.Generation)
			}, nil
		}, resources.Name("bee")),
	)
}

func a3Store(j *a3Journal) fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) *A3Store {
		lc.Append(fx.StopHook(func() { j.add("store closed") }))
		return &A3Store{}
	})
}

// a3ChildSignal: 2 workers held by tasks that wait for their context, 10
// GoReport tasks queued behind them, then SIGTERM or SIGINT with a stop
// budget of 1s.
func a3ChildSignal(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		fx.StopTimeout(time.Second),
		a3Store(j),
		workerpool.Provide[A3Deps]("a3sig",
			workerpool.Workers(2), workerpool.QueueSize(16), a3Res(j, nil, nil),
			workerpool.OnDropped(func(ctx context.Context, _ func(context.Context, A3Deps) error) {
				j.add("dropped %v", ctx.Value(a3IDKey{}))
			}),
		),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[A3Deps]) {
			lc.Append(fx.StartHook(func() error {
				for range 2 {
					if err := p.Go(context.Background(), func(ctx context.Context, _ A3Deps) error {
						j.add("blocker running")
						<-ctx.Done()
						j.add("blocker ended, cause ErrClosed %v", errors.Is(context.Cause(ctx), workerpool.ErrClosed))
						return nil
					}); err != nil {
						return err
					}
				}
				for i := range 10 {
					ctx := context.WithValue(context.Background(), a3IDKey{}, i)
					if err := p.GoReport(ctx, func(context.Context, A3Deps) error { return nil },
						func(o workerpool.Outcome, err error) {
							name := map[workerpool.Outcome]string{workerpool.Succeeded: "Succeeded", workerpool.NotRun: "NotRun"}[o]
							if name == "" {
								name = o.String()
							}
							j.add("report %d %s ErrClosed %v", i, name, errors.Is(err, workerpool.ErrClosed))
						}); err != nil {
						return err
					}
				}
				return nil
			}))
		}),
	)
	_ = app.Wait() // handle signals before "started" is written
	go func() {
		// "started" once both blockers run, so that nothing races the signal
		for {
			b, _ := os.ReadFile(os.Getenv(a3LogEnv))
			if strings.Count(string(b), "blocker running") == 2 {
				j.add("started")
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	app.Run()
	j.add("run returned")
}

// a3ChildMaxRestarts: every task breaks its worker; past MaxRestarts the
// pool fails and asks fx to stop the app with exit code 1.
func a3ChildMaxRestarts(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		fx.StopTimeout(5*time.Second),
		a3Store(j),
		workerpool.Provide[A3Deps]("a3fail",
			workerpool.Workers(2), workerpool.QueueSize(8), a3Res(j, nil, nil),
			workerpool.MaxRestarts(2, time.Hour), workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond),
		),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[A3Deps]) {
			lc.Append(fx.StartHook(func() error {
				for i := range 8 {
					if err := p.Go(context.Background(), func(context.Context, A3Deps) error {
						return fmt.Errorf("task %d: %w", i, resources.ErrBroken)
					}); err != nil {
						return err
					}
				}
				j.add("started")
				return nil
			}))
		}),
	)
	app.Run()
	j.add("run returned")
}

// a3ChildHungClose: worker 1's "bee" ignores its cleanup's context for 3s;
// SIGINT with a stop budget of 1s.
func a3ChildHungClose(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		fx.StopTimeout(time.Second),
		a3Store(j),
		workerpool.Provide[A3Deps]("a3hung",
			workerpool.Workers(2), a3Res(j, nil, func(w resources.Worker) {
				if w.ID == 1 {
					time.Sleep(3 * time.Second)
				}
			}),
		),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[A3Deps]) {
			lc.Append(fx.StartHook(func() { j.add("started") }))
		}),
	)
	_ = app.Wait()
	app.Run()
	j.add("run returned")
}

// a3ChildFailOpen: worker 1's "bee" fails to open; app.Run exits 1.
func a3ChildFailOpen(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		a3Store(j),
		workerpool.Provide[A3Deps]("a3open",
			workerpool.Workers(3), a3Res(j, func(ctx context.Context, w resources.Worker) error {
				if w.ID == 1 {
					return errors.New("disk on fire")
				}
				return nil
			}, nil),
		),
		fx.Invoke(func(*workerpool.Pool[A3Deps]) {}),
	)
	app.Run()
	j.add("run returned")
}

// a3ChildShutdownFromTask: a task asks fx to stop the app with exit code 3.
func a3ChildShutdownFromTask(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		a3Store(j),
		workerpool.Provide[A3Deps]("a3shut", workerpool.Workers(2), a3Res(j, nil, nil)),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[A3Deps], sd fx.Shutdowner) {
			lc.Append(fx.StartHook(func() error {
				return p.Go(context.Background(), func(ctx context.Context, _ A3Deps) error {
					j.add("task asks to shut down")
					return sd.Shutdown(fx.ExitCode(3))
				})
			}))
		}),
	)
	app.Run()
	j.add("run returned")
}

// a3ChildReportPanic: a GoReport whose report panics; then the pool must
// still serve, and the app stop cleanly.
func a3ChildReportPanic(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		a3Store(j),
		workerpool.Provide[A3Deps]("a3rep", workerpool.Workers(1), a3Res(j, nil, nil)),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[A3Deps], sd fx.Shutdowner) {
			lc.Append(fx.StartHook(func() error {
				if err := p.GoReport(context.Background(), func(context.Context, A3Deps) error { return nil },
					func(workerpool.Outcome, error) { panic("report panics") }); err != nil {
					return err
				}
				go func() {
					err := p.Do(context.Background(), func(context.Context, A3Deps) error { return nil })
					j.add("Do after the panicking report: %v", err)
					_ = sd.Shutdown()
				}()
				return nil
			}))
		}),
	)
	app.Run()
	j.add("run returned")
}

// a3ChildCheckPanic: a resources.Check that panics, run by CheckIdle before
// a task: a failed check, so a rebuild, never a crash.
func a3ChildCheckPanic(j *a3Journal) {
	app := fx.New(fx.NopLogger,
		a3Store(j),
		workerpool.Provide[A3Deps]("a3chk", workerpool.Workers(1), workerpool.CheckIdle(time.Nanosecond),
			workerpool.Resources(
				resources.PerWorker(func(_ *A3Store, w resources.Worker) (*A3A, func(), error) {
					j.add("open A w%dg%d", w.ID, w.Generation)
					return &A3A{}, func() { j.add("close A w%dg%d", w.ID, w.Generation) }, nil
				}, resources.Check(func(context.Context, *A3A) error { panic("check panics") })),
				resources.PerWorker(func(_ *A3A, w resources.Worker) (*A3B, func(), error) {
					j.add("open B w%dg%d", w.ID, w.Generation)
					return &A3B{}, func() { j.add("close B w%dg%d", w.ID, w.Generation) }, nil
				}),
			)),
		fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[A3Deps], sd fx.Shutdowner) {
			lc.Append(fx.StartHook(func() {
				go func() {
					time.Sleep(10 * time.Millisecond) // idle longer than CheckIdle
					err := p.Do(context.Background(), func(context.Context, A3Deps) error { return nil })
					j.add("Do after the panicking check: %v", err)
					_ = sd.Shutdown()
				}()
			}))
		}),
	)
	app.Run()
	j.add("run returned")
}

// a3Run runs the child program name; if sig is non-nil, it sends it once
// the journal has "started". It returns the exit code, the journal and
// standard error.
func a3Run(t *testing.T, name string, sig os.Signal) (code int, lines []string, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal")
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), a3ChildEnv+"="+name, a3LogEnv+"="+path)
	var errb strings.Builder
	cmd.Stderr = &errb
	cmd.Stdout = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if sig != nil {
		deadline := time.Now().Add(a3Hang)
		for {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), "started\n") {
				break
			}
			select {
			case <-done:
				t.Fatalf("the child exited before it started: %s", errb.String())
			default:
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("the child never started: %s", errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * a3Hang):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("hang: the child still ran after %v; stderr: %s", 2*a3Hang, errb.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	code = cmd.ProcessState.ExitCode()
	t.Logf("child %s: exit %d\njournal:\n%s\nstderr:\n%s", name, code, strings.Join(lines, "\n"), tail(errb.String(), 3000))
	return code, lines, errb.String()
}

// a3CheckJournal: every open closed exactly once, none closed that did not
// open, B before A in each worker's generation, and (if store) the store
// closed after every resource. except lists resources not expected to
// close (a hung cleanup and those behind it).
func a3CheckJournal(t *testing.T, lines []string, store bool, except ...string) {
	t.Helper()
	count := map[string]int{}
	pos := map[string]int{}
	for i, l := range lines {
		count[l]++
		pos[l] = i
	}
	opens := 0
	for _, l := range lines {
		if res, ok := strings.CutPrefix(l, "open "); ok {
			opens++
			if count[l] != 1 {
				t.Errorf("%q: %d times", l, count[l])
			}
			if slices.Contains(except, res) {
				continue
			}
			if n := count["close "+res]; n != 1 {
				t.Errorf("%q: closed %d times", l, n)
			}
			if store && pos["close "+res] > pos["store closed"] {
				t.Errorf("%q closed after the store", res)
			}
		}
		if res, ok := strings.CutPrefix(l, "close "); ok && count["open "+res] == 0 {
			t.Errorf("%q: never opened", l)
		}
		if res, ok := strings.CutPrefix(l, "close B "); ok {
			if a, ok := pos["close A "+res]; ok && a < pos[l] {
				t.Errorf("worker %s: A closed before B", res)
			}
		}
	}
	if opens == 0 {
		t.Error("nothing opened")
	}
	if store && count["store closed"] != 1 {
		t.Errorf("store closed %d times, want 1", count["store closed"])
	}
}

// TestAttack3ChildSignal: SIGTERM and SIGINT with a tight stop budget:
// under Drain, the two tasks holding the workers have their context
// cancelled (cause ErrClosed) at two fifths; every GoReport task is
// reported exactly once, those that never ran NotRun with ErrClosed and
// seen by OnDropped with their submitter's context; every resource closes
// once, in reverse order, before the store; app.Run returns, exit code 0.
func TestAttack3ChildSignal(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			code, lines, _ := a3Run(t, "signal", sig)
			if code != 0 {
				t.Errorf("exit code %d after %v, want 0", code, sig)
			}
			if !slices.Contains(lines, "run returned") {
				t.Error("app.Run did not return")
			}
			count := map[string]int{}
			for _, l := range lines {
				count[l]++
			}
			if n := count["blocker ended, cause ErrClosed true"]; n != 2 {
				t.Errorf("%d blockers ended with cause ErrClosed, want 2", n)
			}
			for i := range 10 {
				ok, notRun, dropped := count[fmt.Sprintf("report %d Succeeded ErrClosed false", i)],
					count[fmt.Sprintf("report %d NotRun ErrClosed true", i)], count[fmt.Sprintf("dropped %d", i)]
				if ok+notRun != 1 {
					t.Errorf("task %d: reported Succeeded %d times, NotRun(ErrClosed) %d times; want exactly once", i, ok, notRun)
				}
				if dropped != notRun {
					t.Errorf("task %d: NotRun %d times but OnDropped %d times", i, notRun, dropped)
				}
			}
			a3CheckJournal(t, lines, true)
		})
	}
}

// TestAttack3ChildMaxRestarts: past MaxRestarts the pool "fails the pool
// and asks fx to stop the app with exit code 1", saying why on standard
// error (no *zap.Logger here): the pool's name is there; every generation
// that opened closes exactly once, before the store.
func TestAttack3ChildMaxRestarts(t *testing.T) {
	code, lines, stderr := a3Run(t, "maxrestarts", nil)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(stderr, "a3fail") {
		t.Errorf("standard error does not name the pool a3fail")
	}
	a3CheckJournal(t, lines, true)
}

// TestAttack3ChildHungCleanup: a cleanup that ignores its context, under
// SIGINT and a 1s stop budget: the stop returns by nine tenths with an
// error naming the pool, the worker and the resource, so app.Run exits 1
// and says so; the last tenth is left to the store, which still closes;
// every other resource closes once, in reverse order.
func TestAttack3ChildHungCleanup(t *testing.T) {
	code, lines, stderr := a3Run(t, "hungclose", syscall.SIGINT)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (a stop that failed)", code)
	}
	for _, want := range []string{"a3hung", "worker 1", "bee"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("standard error does not name %q", want)
		}
	}
	a3CheckJournal(t, lines, true, "B w1g0", "A w1g0")
}

// TestAttack3ChildFailedOpen: app.Run with an open that fails: exit 1, the
// error on standard error names pool, worker, resource and cause; what
// opened closed, in reverse order.
func TestAttack3ChildFailedOpen(t *testing.T) {
	code, lines, stderr := a3Run(t, "failopen", nil)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, want := range []string{"a3open", "worker 1", "bee", "disk on fire"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("standard error does not name %q", want)
		}
	}
	if slices.Contains(lines, "run returned") {
		t.Error("app.Run returned after a failed start")
	}
	a3CheckJournal(t, lines, true)
}

// TestAttack3ChildShutdownFromTask: a task calls fx.Shutdowner with exit
// code 3: app.Run stops the app (the pool drains the task that asked)
// and the process exits 3, everything closed.
func TestAttack3ChildShutdownFromTask(t *testing.T) {
	code, lines, _ := a3Run(t, "shutdown", nil)
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	a3CheckJournal(t, lines, true)
}

// TestAttack3ChildPanickingReport: report is user code that runs on a
// worker; a panic in it must not crash the process ("never a panic of the
// pool"), the pool goes on and the app stops cleanly.
func TestAttack3ChildPanickingReport(t *testing.T) {
	code, lines, stderr := a3Run(t, "reportpanic", nil)
	if code != 0 {
		t.Errorf("exit code %d, want 0: %s", code, tail(stderr, 400))
	}
	if !slices.Contains(lines, "Do after the panicking report: <nil>") {
		t.Error("the pool did not serve after a report panicked")
	}
	a3CheckJournal(t, lines, true)
}

// TestAttack3ChildPanickingCheck: a resources.Check that panics is a failed
// check (the worker rebuilds), never a crash.
func TestAttack3ChildPanickingCheck(t *testing.T) {
	code, lines, stderr := a3Run(t, "checkpanic", nil)
	if code != 0 {
		t.Errorf("exit code %d, want 0: %s", code, tail(stderr, 400))
	}
	if !slices.Contains(lines, "Do after the panicking check: <nil>") {
		t.Error("the task after a panicking check did not succeed")
	}
	a3CheckJournal(t, lines, true)
}
