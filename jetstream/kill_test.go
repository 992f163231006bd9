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

// The child process of TestAtLeastOnceAcrossKill9 and
// TestTwoProcessesAcrossKill9 is this test binary, run again with these
// variables: the store folder of its embedded server (or the URL of the
// parent's server), the file it appends the number of each message it
// handled to, and how many it handles before its handlers hang (until the
// parent kills it).
const (
	childEnv     = "FXPOOL_JETSTREAM_CHILD_STORE"
	childURL     = "FXPOOL_JETSTREAM_CHILD_URL"
	childRecords = "FXPOOL_JETSTREAM_CHILD_RECORDS"
	childLimit   = "FXPOOL_JETSTREAM_CHILD_LIMIT"
)

// runChild runs the app of a worker process — embedded server or a
// connection by URL, pool, consumer — until the consumer has nothing left,
// then stops it gracefully. The parent kills it with SIGKILL before that,
// most times.
func runChild() int {
	limit, _ := strconv.Atoi(os.Getenv(childLimit))
	if err := child(os.Getenv(childEnv), os.Getenv(childURL), os.Getenv(childRecords), limit); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func child(store, url, records string, limit int) error {
	f, err := os.OpenFile(records, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	handled := 0
	var conn *jetstream.Conn
	server := fx.Options(embedded.Module(store), jetstream.Connect(jetstream.Embedded))
	if url != "" {
		server = jetstream.Connect(url)
	}
	app := fx.New(
		fx.NopLogger,
		fxpool.Module,
		server,
		workerpool.Provide[worker]("child", workerpool.Workers(4)),
		jetstream.Consume(testStream, testConsumer, ids(), func(ctx context.Context, _ worker, i int) error {
			time.Sleep(3 * time.Millisecond)
			mu.Lock()
			if limit > 0 && handled >= limit {
				mu.Unlock()
				<-ctx.Done() // hangs, un-acked, until the kill
				return ctx.Err()
			}
			defer mu.Unlock()
			handled++
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
		t.Skip("starts twenty processes")
	}
	const n, kills = 4000, 20
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
		cmd, done := startChild(t, childEnv+"="+store, childRecords+"="+records)
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
	readRecords(t, records, s)
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

// startChild starts this test binary as a child process with the given
// variables; done receives the result of its Wait.
func startChild(t *testing.T, env ...string) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// readRecords adds the numbers recorded in path to s, and returns how many
// there were.
func readRecords(t *testing.T, path string, s *seen) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		s.add(i)
		n++
	}
	return n
}

// TestTwoProcessesAcrossKill9: two worker processes consume, by URL, from
// a server in this process. The first handles a fixed number of messages,
// then its handlers hang, un-acked, with its window full; the second
// starts and shares the work; the first is killed with SIGKILL. The second
// finishes: every message is handled at least once, none is lost, and the
// consumer ends with nothing pending. The killed process's messages came
// back after AckWait, to the survivor.
func TestTwoProcessesAcrossKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	const n, limit = 3000, 500
	dir := t.TempDir()
	srv, err := embedded.New(filepath.Join(dir, "store"), embedded.Listen("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	conn, err := jetstream.Dial(srv.ClientURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	js := conn.JetStream()
	setupStream(t, js, time.Second, -1)
	publish(t, js, 0, n)

	recA, recB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	a, aDone := startChild(t, childURL+"="+srv.ClientURL(), childRecords+"="+recA, childLimit+"="+strconv.Itoa(limit))
	defer func() {
		_ = a.Process.Kill()
		<-aDone
	}()
	waitFor(t, time.Minute, "the first process's share", func() bool { return countLines(t, recA) >= limit })
	b, bDone := startChild(t, childURL+"="+srv.ClientURL(), childRecords+"="+recB)
	defer func() {
		_ = b.Process.Kill()
		<-bDone
	}()
	waitFor(t, time.Minute, "the second process at work", func() bool { return countLines(t, recB) > 0 })
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-aDone; err == nil {
		t.Fatal("the first process exited on its own: its handlers were to hang")
	}
	aDone = closedErr()
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("second process: %v", err)
		}
		bDone = closedErr()
	case <-time.After(2 * time.Minute):
		t.Fatal("the second process did not finish within 2 minutes")
	}

	s := newSeen()
	fromA, fromB := readRecords(t, recA, s), readRecords(t, recB, s)
	lost, dups := s.check(n)
	t.Logf("%d messages: %d handled by the killed process, %d by the other; %d lost, %d duplicates", n, fromA, fromB, len(lost), dups)
	if len(lost) > 0 {
		t.Errorf("lost %d messages: %v", len(lost), lost[:min(len(lost), 20)])
	}
	if fromA != limit {
		t.Errorf("the killed process handled %d, want its limit %d", fromA, limit)
	}
	if info := consumerInfo(t, js); info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("at the end: %d pending, %d ack-pending", info.NumPending, info.NumAckPending)
	}
}

// closedErr is a channel that yields nil: the Wait of a child already
// waited for.
func closedErr() <-chan error {
	c := make(chan error, 1)
	c <- nil
	return c
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
