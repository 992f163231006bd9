package workerpool_test

// Round 9, item 1 under fx.Run in a child process: Pool.Stop while worker 3
// is opening. The start fails with ErrClosed, Run exits 1, and by then every
// resource that opened has closed (the rollback is over before OnStart
// returns).

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const a9ChildEnv = "FXPOOL_ATTACK9_CHILD"

func TestAttack9ChildStopDuringStartRun(t *testing.T) {
	if path := os.Getenv(a9ChildEnv); path != "" {
		a9child(path)
		return
	}
	for i := range 3 {
		path := filepath.Join(t.TempDir(), "log")
		cmd := exec.Command(os.Args[0], "-test.run=^TestAttack9ChildStopDuringStartRun$", "-test.count=1")
		cmd.Env = append(os.Environ(), a9ChildEnv+"="+path)
		done := make(chan error, 1)
		var out []byte
		go func() { var err error; out, err = cmd.CombinedOutput(); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("child hung; output:\n%s", out)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		opened, closed := map[string]bool{}, map[string]int{}
		stopReturned := false
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "open "):
				opened[strings.TrimPrefix(l, "open ")] = true
			case strings.HasPrefix(l, "close "):
				closed[strings.TrimPrefix(l, "close ")]++
			case l == "stop returned":
				stopReturned = true
			}
		}
		if code != 1 {
			t.Errorf("run %d: child exit code %d, want 1 (start failed); output:\n%s", i, code, out)
		}
		if !strings.Contains(string(out), "pool closed") {
			t.Errorf("run %d: child's output does not name ErrClosed:\n%s", i, out)
		}
		for k := range opened {
			if closed[k] != 1 {
				t.Errorf("run %d: %s opened, closed %d times before exit; log:\n%s", i, k, closed[k], data)
			}
		}
		if len(opened) == 0 {
			t.Errorf("run %d: nothing opened; log:\n%s", i, data)
		}
		t.Logf("run %d: exit %d, %d opened, stop returned before exit: %v", i, code, len(opened), stopReturned)
	}
}

func a9child(path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.Exit(3)
	}
	log := &fileLog{f: f}
	entered := make(chan struct{})
	app := fx.New(fx.NopLogger, fx.StartTimeout(10*time.Second), fx.StopTimeout(5*time.Second),
		workerpool.Provide[ChDeps]("a9child", workerpool.Workers(4), workerpool.StartConcurrency(4),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) (*ChA, func(), error) {
					log.add("open A%d", w.ID)
					return &ChA{}, func() { time.Sleep(20 * time.Millisecond); log.add("close A%d", w.ID) }, nil
				}),
				resources.PerWorker(func(ctx context.Context, _ *ChA, w resources.Worker) (*ChB, func(), error) {
					if w.ID == 3 {
						close(entered)
						<-ctx.Done()
						return nil, nil, context.Cause(ctx)
					}
					log.add("open B%d", w.ID)
					return &ChB{}, func() { time.Sleep(20 * time.Millisecond); log.add("close B%d", w.ID) }, nil
				}),
			)),
		fx.Invoke(func(p *workerpool.Pool[ChDeps]) {
			go func() {
				<-entered
				time.Sleep(30 * time.Millisecond)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = p.Stop(ctx, workerpool.Drain)
				log.add("stop returned")
			}()
		}),
	)
	app.Run()
	log.add("run returned")
	os.Exit(0)
}
