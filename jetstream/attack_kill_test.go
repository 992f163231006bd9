package jetstream_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"go.uber.org/fx"
)

// The child of TestAttackKill9DuringStop is this test binary, run again on
// TestAttackKillChild with these variables.
const (
	attackChildStore   = "FXPOOL_ATTACK_CHILD_STORE"
	attackChildRecords = "FXPOOL_ATTACK_CHILD_RECORDS"
	attackChildDeaf    = "FXPOOL_ATTACK_CHILD_DEAF_FROM" // messages from this one on hang, deaf to their context
)

// TestAttackKillChild is the child process's app: the embedded server on
// the store folder, a pool and Consume, whose handler appends each number
// to the records file before it returns nil. It runs until SIGTERM.
func TestAttackKillChild(t *testing.T) {
	store := os.Getenv(attackChildStore)
	if store == "" {
		t.Skip("only as the child of TestAttackKill9DuringStop")
	}
	deafFrom, _ := strconv.Atoi(os.Getenv(attackChildDeaf))
	f, err := os.OpenFile(os.Getenv(attackChildRecords), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var conn *jetstream.Conn
	app := fx.New(
		consumerOptions(store, 4, func(_ context.Context, _ worker, i int) error {
			if deafFrom > 0 && i >= deafFrom {
				select {} // deaf to its context, until the SIGKILL
			}
			mu.Lock()
			defer mu.Unlock()
			_, err := fmt.Fprintln(f, i)
			return err
		}, &conn),
		fx.StopTimeout(20*time.Second),
	)
	app.Run()
	os.Exit(0)
}

// readNumbers reads the records file.
func readNumbers(t *testing.T, path string) map[int]int {
	t.Helper()
	got := map[int]int{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return got
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if i, err := strconv.Atoi(sc.Text()); err == nil {
			got[i]++
		}
	}
	return got
}

// TestAttackKill9DuringStop: a consumer process whose graceful stop
// (SIGTERM) is under way — handlers deaf to their context, a 20 s stop
// budget — is killed with SIGKILL in the middle of it; a restarted process
// on the same store handles every message that was not recorded as done:
// none is lost.
func TestAttackKill9DuringStop(t *testing.T) {
	dir := t.TempDir()
	const n, deafFrom = 300, 100
	prepareStore(t, dir, n, 2*time.Second)
	records := filepath.Join(t.TempDir(), "records")
	run := func(deaf int) (*exec.Cmd, <-chan error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAttackKillChild$")
		cmd.Env = append(os.Environ(), attackChildStore+"="+dir, attackChildRecords+"="+records, attackChildDeaf+"="+strconv.Itoa(deaf))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		return cmd, done
	}
	first, firstDone := run(deafFrom)
	waitFor(t, attackHang, "the first process handles the messages before the deaf ones", func() bool {
		return len(readNumbers(t, records)) >= deafFrom
	})
	time.Sleep(200 * time.Millisecond) // the deaf ones hold every worker
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the stop is under way: it waits for the deaf tasks
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstDone:
	case <-time.After(attackHang):
		t.Fatal("the first process outlived its SIGKILL")
	}
	before := readNumbers(t, records)

	second, secondDone := run(0)
	waitFor(t, attackHang, "every message handled after the restart", func() bool {
		return len(readNumbers(t, records)) == n
	})
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-secondDone:
		if err != nil {
			t.Errorf("second process: %v", err)
		}
	case <-time.After(attackHang):
		t.Fatal("the second process does not stop on SIGTERM")
	}
	after := readNumbers(t, records)
	dups := 0
	for i := range n {
		if after[i] == 0 {
			t.Errorf("message %d lost", i)
		}
		dups += after[i] - 1
	}
	t.Logf("first process: %d handled; in all %d duplicates", len(before), dups)
}
