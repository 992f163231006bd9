package jetstream_test

// Adversarial round 15: SIGKILL of a child process (this test binary, run
// again) that prefetches (a window over the pool's capacity) and fails
// first attempts, killed mid-batch three times; then this process, on the
// same store, finishes. Written from the public documentation only.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"errors"

	"github.com/fxpool/fxpool/jetstream"
	"go.uber.org/fx"
)

const (
	a15ChildStore   = "FXPOOL_A15_CHILD_STORE"
	a15ChildRecords = "FXPOOL_A15_CHILD_RECORDS"
)

// TestAttack15JSKillChild is the child's app: embedded server on the
// store, 2 workers, Window(24) — a prefetch —, every fifth message failing
// its first delivery; each success is appended to the records file before
// the handler returns nil. It runs until killed.
func TestAttack15JSKillChild(t *testing.T) {
	store := os.Getenv(a15ChildStore)
	if store == "" {
		t.Skip("only as the child of TestAttack15JSKill9Prefetch")
	}
	f, err := os.OpenFile(os.Getenv(a15ChildRecords), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var conn *jetstream.Conn
	app := fx.New(consumerOptions(store, 2, func(ctx context.Context, _ worker, i int) error {
		d, _ := jetstream.DeliveryFrom(ctx)
		if i%5 == 0 && d.Meta.NumDelivered == 1 {
			return errors.New("first attempt fails")
		}
		time.Sleep(time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		_, err := fmt.Fprintln(f, i)
		return err
	}, &conn, jetstream.Window(24), jetstream.Backoff(time.Millisecond, 5*time.Millisecond)))
	app.Run()
	os.Exit(0)
}

// TestAttack15JSKill9Prefetch: three children killed with SIGKILL
// mid-batch, each with its prefetched window held, then this process
// finishes on the same store: no message lost (each recorded by a child
// or handled here), nothing pending or ack-pending at the end; the
// duplicates are counted and logged.
func TestAttack15JSKill9Prefetch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	const n = 1200
	prepareStore(t, dir, n, time.Second)
	records := filepath.Join(t.TempDir(), "records")
	for kill := range 3 {
		before := countLines(t, records)
		cmd := exec.Command(os.Args[0], "-test.run=^TestAttack15JSKillChild$")
		cmd.Env = append(os.Environ(), a15ChildStore+"="+dir, a15ChildRecords+"="+records)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitFor(t, a15Hang, fmt.Sprintf("child %d handles 150 more", kill), func() bool {
			return countLines(t, records) >= before+150
		})
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(a15Hang):
			t.Fatal("the child outlived SIGKILL")
		}
		t.Logf("kill %d: %d records", kill, countLines(t, records))
	}

	srv := startServer(t, dir)
	conn := dial(t, srv)
	js := conn.JetStream()
	pool := startPool(t, 4)
	here := newSeen()
	c := consume(t, conn, pool, func(_ context.Context, _ worker, i int) error { here.add(i); return nil })
	waitFor(t, a15Hang, "every message settled here", settledAll(t, js, n))
	waitFor(t, a15Hang, "nothing pending here", func() bool { return c.Stats().Pending == 0 })

	all := newSeen()
	readRecords(t, records, all)
	fromChildren := all.distinct()
	here.mu.Lock()
	for i, k := range here.n {
		for range k {
			all.add(i)
		}
	}
	here.mu.Unlock()
	lost, dups := all.check(n)
	t.Logf("%d messages: %d distinct by the children, %d handled here; %d lost, %d duplicates; stats here %+v",
		n, fromChildren, here.distinct(), len(lost), dups, c.Stats())
	if len(lost) > 0 {
		t.Errorf("lost %d: %v", len(lost), lost[:min(20, len(lost))])
	}
	if st := c.Stats(); st.Termed != 0 {
		t.Errorf("stats %+v: Term'd without MaxAttempts", st)
	}
	if info := consumerInfo(t, js); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("at the end: %d ack-pending, %d pending", info.NumAckPending, info.NumPending)
	}
	checkSettledOnce(t, c)
}
