package workerpool_test

// Round 10, in a child process:
//   - "timeout", under App.Run: fx.StartTimeout(a10StartTimeout), 2,000
//     workers, some of whose opens are slow, one of which (respecting its
//     context) takes longer than the start's open share, some growing their
//     stacks: the start fails, Run exits 1, and every resource that opened
//     was closed before the process exited.
//   - "sigterm", under Run's steps (Start, Wait, Stop): the app serves 600
//     workers (deep and light constructors) with a full queue; SIGTERM
//     stops it under Drain: exit 0, every queued task ran, every resource
//     closed exactly once.
//
// The start's budget is a few seconds, not one: with a 1 s budget, the
// rollback of 2,000 workers under the race detector had a quarter of a
// second, and on a busy machine (other processes on both cores) it closed
// none of them, or some, before fx gave up and Run exited: the test
// failed for a slow machine, not for the pool. And SIGTERM is sent once
// the app waits for it: fx handles signals only from Wait on, after Start
// returns, and a SIGTERM during Start ends the process (exit -1), as any
// Go program's before it asks for the signal.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

const a10ChildEnv = "FXPOOL_ATTACK10_CHILD"

// a10StartTimeout is the start budget of the "timeout" child: its open
// share (two thirds) is what the blocked open waits for.
const a10StartTimeout = 4 * time.Second

type A10C struct{ w W }

func TestAttack10ChildRun(t *testing.T) {
	if spec := os.Getenv(a10ChildEnv); spec != "" {
		mode, path, _ := strings.Cut(spec, ":")
		a10child(mode, path)
		return
	}
	for _, mode := range []string{"timeout", "sigterm"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			cmd := exec.Command(os.Args[0], "-test.run=^TestAttack10ChildRun$", "-test.count=1")
			cmd.Env = append(os.Environ(), a10ChildEnv+"="+mode+":"+path)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			if mode == "sigterm" {
				// wait for the child to say it serves
				deadline := time.Now().Add(30 * time.Second)
				for {
					data, _ := os.ReadFile(path)
					if strings.Contains(string(data), "serving\n") {
						break
					}
					if time.Now().After(deadline) {
						_ = cmd.Process.Kill()
						<-done
						t.Fatalf("child never served; output:\n%s", out.String())
					}
					time.Sleep(5 * time.Millisecond)
				}
				_ = cmd.Process.Signal(syscall.SIGTERM)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("child hung; output:\n%s", out.String())
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			data, _ := os.ReadFile(path)
			opened, closed := map[string]int{}, map[string]int{}
			queued, ran := -1, 0
			for _, l := range strings.Split(string(data), "\n") {
				switch {
				case strings.HasPrefix(l, "open "):
					opened[strings.TrimPrefix(l, "open ")]++
				case strings.HasPrefix(l, "close "):
					closed[strings.TrimPrefix(l, "close ")]++
				case strings.HasPrefix(l, "queued "):
					fmt.Sscan(strings.TrimPrefix(l, "queued "), &queued)
				case l == "ran":
					ran++
				}
			}
			want := 1
			if mode == "sigterm" {
				want = 0
			}
			if code != want {
				t.Errorf("exit code %d, want %d; output:\n%s", code, want, tail(out.String(), 30))
			}
			for k, n := range opened {
				if n != 1 || closed[k] != 1 {
					t.Errorf("%s opened %d times, closed %d times before the process exited", k, n, closed[k])
				}
			}
			for k := range closed {
				if opened[k] == 0 {
					t.Errorf("%s closed, never opened", k)
				}
			}
			if len(opened) == 0 {
				t.Errorf("nothing opened; output:\n%s", tail(out.String(), 30))
			}
			if mode == "sigterm" && (queued <= 0 || ran < queued) {
				t.Errorf("%d tasks queued before SIGTERM, %d ran (Drain runs them all)", queued, ran)
			}
			t.Logf("%s: exit %d, %d opened, queued %d ran %d", mode, code, len(opened), queued, ran)
		})
	}
}

func a10child(mode, path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.Exit(3)
	}
	log := &fileLog{f: f}
	workers := 2000
	if mode == "sigterm" {
		workers = 600
	}
	var p *workerpool.Pool[*A10C]
	opts := []fx.Option{
		fx.NopLogger, fx.StartTimeout(a10StartTimeout), fx.StopTimeout(20 * time.Second),
		workerpool.Provide[*A10C]("a10child", workerpool.Workers(workers), workerpool.QueueSize(1024),
			workerpool.Resources(resources.PerWorker(func(ctx context.Context, w W) (*A10C, func(), error) {
				if w.ID%3 == 0 {
					deep(48)
				}
				if mode == "timeout" && w.ID%40 == 0 {
					slow := time.Duration(w.ID/40) * 40 * time.Millisecond
					if w.ID == workers-40 {
						slow = 2 * a10StartTimeout // longer than the open's share
					}
					select {
					case <-time.After(slow):
					case <-ctx.Done():
						return nil, nil, context.Cause(ctx)
					}
				}
				log.add("open %d/%d", w.ID, w.Generation)
				return &A10C{w}, func() { log.add("close %d/%d", w.ID, w.Generation) }, nil
			}))),
		fx.Populate(&p),
	}
	if mode != "sigterm" {
		fx.New(opts...).Run()
		log.add("run returned")
		os.Exit(0)
	}
	release := make(chan struct{})
	var busy atomic.Int64
	opts = append(opts, fx.Invoke(func(lc fx.Lifecycle) {
		lc.Append(fx.StartHook(func() error {
			// Every worker busy, the queue full.
			for range workers {
				_ = p.Go(context.Background(), func(context.Context, *A10C) error {
					busy.Add(1)
					<-release
					return nil
				})
			}
			for range 1024 {
				_ = p.Go(context.Background(), func(context.Context, *A10C) error { log.add("ran"); return nil })
			}
			return nil
		}))
	}))
	// What App.Run does, with "serving" said once the app waits for a
	// signal (see the top of the file).
	app := fx.New(opts...)
	ctx, cancel := context.WithTimeout(context.Background(), app.StartTimeout())
	if err := app.Start(ctx); err != nil {
		os.Exit(1)
	}
	cancel()
	done := app.Wait()
	for busy.Load() < int64(workers) || p.Stats().Queued < 1024 {
		time.Sleep(time.Millisecond)
	}
	log.add("queued %d", p.Stats().Queued)
	log.add("serving")
	time.Sleep(50 * time.Millisecond)
	close(release)
	<-done
	ctx, cancel = context.WithTimeout(context.Background(), app.StopTimeout())
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		os.Exit(1)
	}
	log.add("run returned")
	os.Exit(0)
}
