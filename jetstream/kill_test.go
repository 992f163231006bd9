package jetstream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool"
	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

// The child process of TestAtLeastOnceAcrossKill9 is this test binary,
// run again with these variables: the store folder and the file it
// appends the number of each message it handled to.
const (
	childEnv     = "FXPOOL_JETSTREAM_CHILD_STORE"
	childRecords = "FXPOOL_JETSTREAM_CHILD_RECORDS"
)

// runChild runs the app of a worker process — embedded server, connection,
// pool, consumer — until the consumer has nothing left, then stops it
// gracefully. The parent kills it with SIGKILL before that, most times.
func runChild() int {
	if err := child(os.Getenv(childEnv), os.Getenv(childRecords)); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func child(store, records string) error {
	f, err := os.OpenFile(records, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	var conn *jetstream.Conn
	app := fx.New(
		fx.NopLogger,
		fxpool.Module,
		embedded.Module(store),
		jetstream.Connect(jetstream.Embedded),
		workerpool.Provide[worker]("child", workerpool.Workers(4)),
		jetstream.Consume(testStream, testConsumer, ids(), func(_ context.Context, _ worker, i int) error {
			time.Sleep(3 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			// Before the ack: a message acked is one recorded. kill -9
			// loses nothing written: the kernel holds it.
			_, err := fmt.Fprintln(f, i)
			return err
		}),
		fx.Populate(&conn),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		return err
	}
	for {
		time.Sleep(50 * time.Millisecond)
		c, err := conn.JetStream().Consumer(ctx, testStream, testConsumer)
		if err != nil {
			continue
		}
		info, err := c.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelStop()
	return errors.Join(ctx.Err(), app.Stop(stopCtx))
}

// TestAtLeastOnceAcrossKill9: a worker process killed with SIGKILL at
// random points (seeded; the seed is logged) and restarted each time loses
// no message: every one is handled at least once, and the stream ends with
// nothing pending. Duplicates — messages handled by a process killed
// before its ack reached the server — are counted.
func TestAtLeastOnceAcrossKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes")
	}
	const n, kills = 4000, 12
	dir := t.TempDir()
	store, records := filepath.Join(dir, "store"), filepath.Join(dir, "records")

	srv := startServer(t, store)
	conn := dial(t, srv)
	setupStream(t, conn.JetStream(), time.Second, -1)
	publish(t, conn.JetStream(), 0, n)
	_ = conn.Close(t.Context())
	srv.Shutdown()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	run := func(killAfter time.Duration) (exited bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+store, childRecords+"="+records)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if killAfter == 0 {
			killAfter = time.Minute
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			return true
		case <-time.After(killAfter):
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-done
			return false
		}
	}
	killed := 0
	for range kills {
		after := time.Duration(100+rng.IntN(500)) * time.Millisecond
		if run(after) {
			break
		}
		killed++
		t.Logf("killed after %v: %d handled so far", after, countLines(t, records))
	}
	if !run(0) {
		t.Fatal("the last child did not finish within a minute")
	}

	s := newSeen()
	rf, err := os.Open(records)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	sc := bufio.NewScanner(rf)
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		s.add(i)
	}
	lost, dups := s.check(n)
	t.Logf("%d messages, %d kills: %d lost, %d duplicates", n, killed, len(lost), dups)
	if len(lost) > 0 {
		t.Errorf("lost %d messages: %v", len(lost), lost[:min(len(lost), 20)])
	}
	if killed < kills/2 {
		t.Errorf("only %d of %d children were killed before they finished", killed, kills)
	}

	srv = startServer(t, store)
	conn = dial(t, srv)
	if info := consumerInfo(t, conn.JetStream()); info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("after the last run: %d pending, %d ack-pending", info.NumPending, info.NumAckPending)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
