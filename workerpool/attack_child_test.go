package workerpool_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const atkChildEnv = "FXPOOL_ATTACK_CHILD"

// fileLog appends one line per write (one syscall each: survives os.Exit).
type fileLog struct {
	mu sync.Mutex
	f  *os.File
}

func (l *fileLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, format+"\n", args...)
}

type ChA struct{}
type ChB struct{}
type ChDeps struct {
	fx.In
	B *ChB
}

// childApp builds the app of the child process: 4 workers, A then B;
// worker 3's B hangs until its context ends (mode "honour") or for 5s
// ignoring it (mode "ignore"); each cleanup takes closeDelay.
func childApp(log *fileLog, mode string, closeDelay time.Duration) *fx.App {
	return fx.New(
		fx.NopLogger,
		fx.StartTimeout(600*time.Millisecond),
		fx.StopTimeout(2*time.Second),
		workerpool.Provide[ChDeps]("childpool",
			workerpool.Workers(4),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) (*ChA, func(), error) {
					log.add("open A %d", w.ID)
					return &ChA{}, func() { time.Sleep(closeDelay); log.add("close A %d", w.ID) }, nil
				}),
				resources.PerWorker(func(ctx context.Context, _ *ChA, w resources.Worker) (*ChB, func(), error) {
					if w.ID == 3 && mode != "run" {
						if mode == "honour" {
							<-ctx.Done()
							return nil, nil, context.Cause(ctx)
						}
						time.Sleep(5 * time.Second)
					}
					log.add("open B %d", w.ID)
					return &ChB{}, func() { time.Sleep(closeDelay); log.add("close B %d", w.ID) }, nil
				}),
			),
		),
		fx.Invoke(func(p *workerpool.Pool[ChDeps], lc fx.Lifecycle) {
			lc.Append(fx.StartHook(func() {
				log.add("started")
				// keep busy so Drain has work on SIGTERM
				for range 4 {
					_ = p.Go(context.Background(), func(ctx context.Context, _ ChDeps) error {
						select {
						case <-ctx.Done():
						case <-time.After(100 * time.Millisecond):
						}
						log.add("task done")
						return nil
					})
				}
			}))
		}),
	)
}

// TestAttackChildProcess is the child's body; skipped unless re-executed.
func TestAttackChildProcess(t *testing.T) {
	spec := os.Getenv(atkChildEnv)
	if spec == "" {
		t.Skip("child only")
	}
	parts := strings.Split(spec, ",")
	mode, path := parts[0], parts[1]
	closeDelay, _ := time.ParseDuration(parts[2])
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	log := &fileLog{f: f}
	app := childApp(log, mode, closeDelay)
	log.add("run")
	// Listen for signals before the start logs "started": fx's Run would
	// install its handler only after the start, and a SIGTERM sent in
	// between would kill the process with the default action.
	_ = app.Wait()
	app.Run() // exits the process on a failed start; returns after a signal
	log.add("run returned")
	os.Exit(0) // do not let goleak/test framework get involved
}

func runChild(t *testing.T, mode string, closeDelay time.Duration, signal bool) (lines []string, exitCode int, took time.Duration) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttackChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), atkChildEnv+"="+mode+","+path+","+closeDelay.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if signal {
		// wait for "started" then SIGTERM
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), "started") {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child never started: %s", stderr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("child hung; output: %s", stderr.String())
	}
	took = time.Since(t0)
	exitCode = cmd.ProcessState.ExitCode()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	t.Logf("child %s exit %d in %v; output tail: %s", mode, exitCode, took, tail(stderr.String(), 600))
	return
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// every "open X i" has one "close X i"; B i closes before A i.
func checkLines(t *testing.T, lines []string) {
	t.Helper()
	pos := map[string]int{}
	count := map[string]int{}
	for i, l := range lines {
		pos[l] = i
		count[l]++
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "open ") {
			c := "close " + strings.TrimPrefix(l, "open ")
			if count[c] != 1 {
				t.Errorf("%q: closed %d times before the process exited", l, count[c])
			}
		}
		if strings.HasPrefix(l, "close ") && count["open "+strings.TrimPrefix(l, "close ")] == 0 {
			t.Errorf("%q without its open", l)
		}
	}
	for w := range 4 {
		b, a := fmt.Sprintf("close B %d", w), fmt.Sprintf("close A %d", w)
		if _, ok := pos[b]; ok && pos[b] > pos[a] {
			t.Errorf("worker %d: B closed after A", w)
		}
	}
}

// fx.StartTimeout with app.Run(): a start that runs out of budget must have
// closed every opened resource before the process exits.
func TestAttackStartTimeoutAppRunClosesEverything(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		delay time.Duration
	}{{"honour", 0}, {"honour", 20 * time.Millisecond}} {
		t.Run(fmt.Sprintf("%s/close%v", tc.mode, tc.delay), func(t *testing.T) {
			lines, code, _ := runChild(t, tc.mode, tc.delay, false)
			if code == 0 {
				t.Errorf("exit code 0 after a failed start")
			}
			if !contains(lines, "open A 3") {
				t.Errorf("worker 3 never opened A: %v", lines)
			}
			checkLines(t, lines)
		})
	}
}

// app.Run + SIGTERM: the stop drains and closes everything; exit 0.
func TestAttackSignalStopClosesEverything(t *testing.T) {
	lines, code, _ := runChild(t, "run", 10*time.Millisecond, true)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if !contains(lines, "run returned") {
		t.Error("app.Run did not return after SIGTERM")
	}
	n := 0
	for _, l := range lines {
		if l == "task done" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d tasks done, want 4", n)
	}
	checkLines(t, lines)
	opens := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "open ") {
			opens++
		}
	}
	if opens != 8 {
		t.Errorf("%d opens, want 8", opens)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
