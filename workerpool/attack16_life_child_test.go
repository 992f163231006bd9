package workerpool_test

// Real programs run through fx.New(...).Run() in a child process (this test
// binary, re-executed with A16L_CHILD set), signalled at chosen moments. The
// child writes every open, close and mark of the lifecycle harness to a file
// as it happens; the parent reads it back and checks the lifecycle.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

const (
	a16lChildEnv = "A16L_CHILD"
	a16lFileEnv  = "A16L_FILE"
)

// TestA16lChild is the child's entry point; it does nothing in the parent.
func TestA16lChild(t *testing.T) {
	scenario := os.Getenv(a16lChildEnv)
	if scenario == "" {
		t.Skip("child process entry point")
	}
	f, err := os.OpenFile(os.Getenv(a16lFileEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	h := a16lNew()
	h.sink = func(e a16lEntry) {
		res := e.res
		if e.op == "ev" {
			res = fmt.Sprintf("%T", e.ev)
		}
		if res == "" {
			res = "-"
		}
		msg := strings.ReplaceAll(strings.ReplaceAll(e.msg, "\n", " | "), " ", "_")
		fmt.Fprintf(f, "%s %s %d %d %s\n", e.op, res, e.w.ID, e.w.Generation, msg)
	}
	note := func(what string) { h.add(a16lEntry{op: "note", res: what}) }
	stdin := bufio.NewReader(os.Stdin)
	var stdinMu sync.Mutex
	readLine := func() { stdinMu.Lock(); _, _ = stdin.ReadString('\n'); stdinMu.Unlock() }

	var opts []workerpool.Option
	var extra []fx.Option
	started := fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
		lc.Append(fx.StartHook(func() { note("started") }))
	})
	switch scenario {
	case "sigterm-task":
		opts = append(opts, workerpool.Workers(2))
		extra = append(extra, fx.StopTimeout(5*time.Second),
			fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
				lc.Append(fx.StartHook(func(ctx context.Context) error {
					for i := 0; i < 2; i++ {
						if err := p.Go(ctx, func(ctx context.Context, d a16lDeps) error {
							h.checkTask(d)
							h.add(a16lEntry{op: "task", res: "start", w: d.W})
							<-ctx.Done()
							h.checkTask(d)
							h.add(a16lEntry{op: "task", res: "end", w: d.W, msg: fmt.Sprint(context.Cause(ctx))})
							return nil
						}); err != nil {
							return err
						}
					}
					return nil
				}))
			}))
	case "sigint-close":
		opts = append(opts, workerpool.Workers(2))
		extra = append(extra, fx.StopTimeout(20*time.Second))
		h.setClose(func(ctx context.Context, res string, w resources.Worker) error {
			if res == "C" && w.ID == 0 {
				note("closing")
				readLine() // until the parent says so, whatever the signals
			}
			return nil
		})
	case "sigterm-rebuild-open":
		opts = append(opts, workerpool.Workers(1))
		extra = append(extra, fx.StopTimeout(5*time.Second),
			fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
				lc.Append(fx.StartHook(func(ctx context.Context) error {
					return p.Go(ctx, func(context.Context, a16lDeps) error { panic("a16l: rebuild me") })
				}))
			}))
		h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
			if res == "A" && w.Generation >= 1 {
				<-ctx.Done()
				return context.Cause(ctx)
			}
			return nil
		})
	case "maxrestarts":
		opts = append(opts, workerpool.Workers(1), workerpool.MaxRestarts(2, time.Hour),
			workerpool.RestartBackoff(time.Millisecond, 2*time.Millisecond))
		extra = append(extra, fx.StopTimeout(10*time.Second),
			fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
				lc.Append(fx.StartHook(func(ctx context.Context) error {
					for i := 0; i < 6; i++ {
						if err := p.Go(ctx, func(context.Context, a16lDeps) error { panic("a16l: poison") }); err != nil {
							return err
						}
					}
					return nil
				}))
			}))
	case "stopguard":
		opts = append(opts, workerpool.Workers(2))
		extra = append(extra, fx.StopTimeout(2*time.Second), fxpool.Module,
			fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
				lc.Append(fx.StopHook(func(ctx context.Context) error {
					note("slow hook")
					<-ctx.Done()
					return ctx.Err()
				}))
			}))
	case "start-timeout":
		opts = append(opts, workerpool.Workers(3))
		extra = append(extra, fx.StartTimeout(3*time.Second))
		h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
			if res == "B" && w.ID == 1 {
				<-ctx.Done()
				return context.Cause(ctx)
			}
			return nil
		})
	case "sigterm-resize-open":
		opts = append(opts, workerpool.Workers(1))
		extra = append(extra, fx.StopTimeout(5*time.Second),
			fx.Invoke(func(lc fx.Lifecycle, p *workerpool.Pool[a16lDeps]) {
				lc.Append(fx.StartHook(func() error { return p.Resize(3) }))
			}))
		h.setOpen(func(ctx context.Context, res string, w resources.Worker) error {
			if res == "B" && w.ID >= 1 {
				<-ctx.Done()
				return context.Cause(ctx)
			}
			return nil
		})
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(3)
	}
	all := append([]workerpool.Option{h.resources(), workerpool.Events(h.event)}, opts...)
	fxopts := []fx.Option{
		fx.NopLogger,
		h.store(),
		workerpool.Provide[a16lDeps]("p16", all...),
		started,
	}
	fxopts = append(fxopts, extra...)
	if scenario == "stopguard" {
		fxopts = append(fxopts, workerpool.StopGuard())
	}
	app := fx.New(fxopts...)
	// fx catches signals only once Start has returned: the parent, which
	// sends them as soon as the tasks that OnStart submitted run, would
	// otherwise kill the process (exit -15) now and then. Done starts
	// catching them now; Run then sees what came during its start.
	_ = app.Done()
	app.Run() // exits with 1 itself on a failed start or stop
	note("run returned")
	os.Exit(0)
}

// a16lProc is a running child.
type a16lProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	file   string
	stdin  io.WriteCloser
	out    bytes.Buffer
	exited chan struct{}
	code   int
}

func a16lSpawn(t *testing.T, scenario string) *a16lProc {
	t.Helper()
	if testing.Short() {
		t.Skip("child processes")
	}
	file := filepath.Join(t.TempDir(), "lifecycle.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestA16lChild$", "-test.count=1", "-test.timeout=120s")
	cmd.Env = append(os.Environ(), a16lChildEnv+"="+scenario, a16lFileEnv+"="+file)
	p := &a16lProc{t: t, cmd: cmd, file: file, exited: make(chan struct{})}
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = -int(ws.Signal())
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// lines reads the child's file.
func (p *a16lProc) entries() []a16lEntry {
	data, _ := os.ReadFile(p.file)
	var es []a16lEntry
	for i, line := range strings.Split(string(data), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 4 {
			continue
		}
		id, _ := strconv.Atoi(fs[2])
		gen, _ := strconv.Atoi(fs[3])
		e := a16lEntry{seq: i + 1, op: fs[0], res: fs[1], w: resources.Worker{Pool: "p16", ID: id, Generation: gen}}
		if len(fs) > 4 {
			e.msg = fs[4]
		}
		es = append(es, e)
	}
	return es
}

// waitLines waits until cond holds on the child's entries.
func (p *a16lProc) waitFor(what string, cond func([]a16lEntry) bool) {
	p.t.Helper()
	deadline := time.Now().Add(a16lGuard)
	for {
		if cond(p.entries()) {
			return
		}
		select {
		case <-p.exited:
			if cond(p.entries()) {
				return
			}
			p.t.Fatalf("child exited (%d) before %s; output:\n%s\nlog:\n%s", p.code, what, p.out.String(), p.dump())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("hang guard: %s; output:\n%s\nlog:\n%s", what, p.out.String(), p.dump())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *a16lProc) signal(s syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatalf("signal %v: %v", s, err)
	}
}

func (p *a16lProc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(a16lGuard * 2):
		p.t.Fatalf("hang guard: child did not exit; output:\n%s\nlog:\n%s", p.out.String(), p.dump())
		return 0
	}
}

func (p *a16lProc) dump() string {
	var b strings.Builder
	for _, e := range p.entries() {
		fmt.Fprintf(&b, "%d %s %s w%d/g%d %s\n", e.seq, e.op, e.res, e.w.ID, e.w.Generation, e.msg)
	}
	return b.String()
}

// check replays the child's entries through the harness's checks.
func (p *a16lProc) check(balanced bool, ignoreStore bool) *a16lH {
	p.t.Helper()
	h := a16lNew()
	h.ignoreStore.Store(ignoreStore)
	for _, e := range p.entries() {
		h.add(e)
	}
	h.checkLifecycle(p.t, balanced)
	if p.t.Failed() {
		p.t.Logf("child output:\n%s", p.out.String())
	}
	return h
}

func a16lHasNote(what string) func([]a16lEntry) bool {
	return func(es []a16lEntry) bool {
		for _, e := range es {
			if e.op == "note" && e.res == what {
				return true
			}
		}
		return false
	}
}

func a16lStoreMarked(es []a16lEntry) bool {
	for _, e := range es {
		if e.op == "mark" && e.res == "store" {
			return true
		}
	}
	return false
}

// SIGTERM while tasks run: exit status 0; the running tasks' contexts end
// with ErrClosed; every resource closes once, in reverse, before the store.
func TestA16lChildSIGTERMDuringTask(t *testing.T) {
	p := a16lSpawn(t, "sigterm-task")
	p.waitFor("two tasks running", func(es []a16lEntry) bool { return a16lCount(es, "task", "start", -1) == 2 })
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", code, p.out.String())
	}
	es := p.entries()
	if n := a16lCount(es, "task", "end", -1); n != 2 {
		t.Errorf("%d tasks ended, want 2", n)
	}
	for _, e := range es {
		if e.op == "task" && e.res == "end" && !strings.Contains(e.msg, "pool_closed") {
			t.Errorf("task context cause %q, want ErrClosed", e.msg)
		}
	}
	if a16lCount(es, "close", "", -1) != 6 || !a16lStoreMarked(es) {
		t.Errorf("closes %d (want 6), store closed %v\n%s", a16lCount(es, "close", "", -1), a16lStoreMarked(es), p.dump())
	}
	p.check(true, false)
}

// SIGINT, then SIGINT and SIGTERM again while a cleanup is running: the
// cleanup finishes, nothing closes twice, exit status 0.
func TestA16lChildSignalsDuringClose(t *testing.T) {
	p := a16lSpawn(t, "sigint-close")
	p.waitFor("started", a16lHasNote("started"))
	p.signal(syscall.SIGINT)
	p.waitFor("a cleanup running", a16lHasNote("closing"))
	p.signal(syscall.SIGINT)
	p.signal(syscall.SIGTERM)
	time.Sleep(50 * time.Millisecond) // let the signals land while the cleanup runs
	select {
	case <-p.exited:
		t.Fatalf("child exited (%d) on a second signal while a cleanup ran; output:\n%s\nlog:\n%s", p.code, p.out.String(), p.dump())
	default:
	}
	_, _ = io.WriteString(p.stdin, "go\n")
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", code, p.out.String())
	}
	es := p.entries()
	if a16lCount(es, "close", "", -1) != 6 || !a16lStoreMarked(es) {
		t.Errorf("closes %d (want 6), store closed %v\n%s", a16lCount(es, "close", "", -1), a16lStoreMarked(es), p.dump())
	}
	p.check(true, false)
}

// SIGTERM while a worker reopens after a panic (its constructor honours its
// context): the process exits; the first generation closed once, the
// abandoned reopen closes what it opened, the store closes last.
func TestA16lChildSIGTERMDuringRebuildOpen(t *testing.T) {
	p := a16lSpawn(t, "sigterm-rebuild-open")
	p.waitFor("the reopen", func(es []a16lEntry) bool {
		for _, e := range es {
			if e.op == "try" && e.res == "A" && e.w.Generation == 1 {
				return true
			}
		}
		return false
	})
	p.signal(syscall.SIGTERM)
	code := p.wait()
	t.Logf("exit status %d; output:\n%s", code, p.out.String())
	if code != 0 {
		t.Errorf("exit status %d, want 0: a reopen the stop ended is not a teardown error", code)
	}
	es := p.entries()
	if a16lCount(es, "close", "", -1) != 3 || !a16lStoreMarked(es) {
		t.Errorf("closes %d (want 3: generation 0), store closed %v\n%s", a16lCount(es, "close", "", -1), a16lStoreMarked(es), p.dump())
	}
	p.check(true, false)
}

// Past MaxRestarts the pool fails and asks fx to stop the app with exit
// code 1; every generation that opened closes once; the store closes last;
// without a *zap.Logger, standard error says why.
func TestA16lChildMaxRestartsExitsOne(t *testing.T) {
	p := a16lSpawn(t, "maxrestarts")
	code := p.wait()
	if code != 1 {
		t.Errorf("exit status %d, want 1; output:\n%s", code, p.out.String())
	}
	es := p.entries()
	if !a16lStoreMarked(es) {
		t.Errorf("store never closed\n%s", p.dump())
	}
	if !strings.Contains(p.out.String(), "p16") {
		t.Errorf("standard error does not name the failed pool:\n%s", p.out.String())
	}
	p.check(true, false)
}

// StopGuard with a slow hook that takes the whole stop budget: fx gives up
// (exit status 1) but the pool has closed every resource once before the
// process exits.
func TestA16lChildStopGuardSlowHook(t *testing.T) {
	p := a16lSpawn(t, "stopguard")
	p.waitFor("started", a16lHasNote("started"))
	p.signal(syscall.SIGTERM)
	code := p.wait()
	if code != 1 {
		t.Errorf("exit status %d, want 1 (fx's stop ran out of budget); output:\n%s", code, p.out.String())
	}
	es := p.entries()
	if n := a16lCount(es, "close", "", -1); n != 6 {
		t.Errorf("%d closes before the process exited, want 6\n%s", n, p.dump())
	}
	p.check(true, true)
}

// App.Run with fx.StartTimeout and a constructor that waits for its
// context: the start rolls back before App.Run exits the process (status
// 1): every resource that opened, in every worker, was closed first.
func TestA16lChildStartTimeoutRollsBackBeforeExit(t *testing.T) {
	p := a16lSpawn(t, "start-timeout")
	code := p.wait()
	if code != 1 {
		t.Errorf("exit status %d, want 1; output:\n%s", code, p.out.String())
	}
	es := p.entries()
	if n := a16lCount(es, "open", "", -1); n != 7 {
		t.Errorf("%d opens, want 7 (workers 0 and 2: 3 each; worker 1: A)\n%s", n, p.dump())
	}
	if a16lHasNote("started")(es) {
		t.Errorf("the app started")
	}
	p.check(true, true)
}

// SIGTERM while workers added by Resize are still opening: the process
// exits 0, nothing is left open, those workers never serve.
func TestA16lChildSIGTERMDuringResizeOpen(t *testing.T) {
	p := a16lSpawn(t, "sigterm-resize-open")
	p.waitFor("the added workers opening", func(es []a16lEntry) bool {
		return a16lCount(es, "try", "B", 1) == 1 && a16lCount(es, "try", "B", 2) == 1
	})
	p.signal(syscall.SIGTERM)
	code := p.wait()
	if code != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", code, p.out.String())
	}
	es := p.entries()
	if !a16lStoreMarked(es) {
		t.Errorf("store never closed\n%s", p.dump())
	}
	p.check(true, false)
}
