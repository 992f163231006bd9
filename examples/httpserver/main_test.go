package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/goleak"
)

// childEnv makes the test binary run main instead of the tests, with the
// arguments it holds, one a line: the program under SIGTERM.
const childEnv = "HTTPSERVER_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(childEnv); ok {
		os.Args = append(os.Args[:1], strings.Split(args, "\n")...)
		main() // fx's Run exits the process itself if the app fails
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// stopTimeout is the small stop budget of both tests: a third of it for
// the server (which the slow client uses up), the rest for the pool, whose
// last tenth is the store's.
const stopTimeout = 900 * time.Millisecond

// hang bounds every wait: past it, something hangs.
const hang = 20 * time.Second

// TestStopFlushesEveryAcknowledgedEvent runs the app in process: clients
// send events while a slow client holds a request open; the app stops
// mid-load with a stop budget of 900ms. Every acknowledged event is in the
// store, and the hooks stop in order.
func TestStopFlushesEveryAcknowledgedEvent(t *testing.T) {
	events := t.TempDir() + "/events.log"
	var out syncBuffer
	var srv *http.Server
	app := fx.New(
		App(Config{Addr: "127.0.0.1:0", Events: events, StopTimeout: stopTimeout, Log: log.New(&out, "", 0)}),
		fx.Populate(&srv),
		fx.NopLogger,
	)
	startCtx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	slow := holdRequest(t, srv.Addr)
	defer slow.Close()

	var stopErr error
	acked := sendUntilRefused(t, srv.Addr, func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), app.StopTimeout())
		defer cancel()
		stopErr = app.Stop(stopCtx)
	})
	if stopErr != nil {
		t.Errorf("app.Stop: %v", stopErr)
	}
	checkFlushed(t, acked, events, strings.Split(strings.TrimSpace(out.String()), "\n"))
}

// TestSIGTERMFlushesEveryAcknowledgedEvent runs the command as it is run,
// fx.New(...).Run() in a process of its own, and stops it with SIGTERM
// under load, with -stop-timeout=900ms and a slow client that keeps the
// server's graceful shutdown from finishing: the process exits 0, and every
// acknowledged event is in the store.
func TestSIGTERMFlushesEveryAcknowledgedEvent(t *testing.T) {
	events := t.TempDir() + "/events.log"
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{
		"-addr=127.0.0.1:0",
		"-events=" + events,
		"-stop-timeout=" + stopTimeout.String(),
	}, "\n"))
	var stderr syncBuffer
	cmd.Stderr = &stderr // fx's own log
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdout := bufio.NewScanner(pipe)
	var lines []string
	addr := ""
	for addr == "" && stdout.Scan() {
		lines = append(lines, stdout.Text())
		addr, _ = strings.CutPrefix(stdout.Text(), "listening on ")
	}
	if addr == "" {
		_ = cmd.Wait()
		t.Fatalf("the program never said where it listens; stdout:\n%s\nstderr:\n%s", strings.Join(lines, "\n"), stderr.String())
	}
	rest := make(chan []string)
	go func() {
		var more []string
		for stdout.Scan() {
			more = append(more, stdout.Text())
		}
		_, _ = io.Copy(io.Discard, pipe)
		rest <- more
	}()

	slow := holdRequest(t, addr)
	defer slow.Close()
	// fx listens for signals once Run's start has returned, a moment after
	// "listening on": the hundreds of requests acknowledged before the
	// SIGTERM take far longer than that moment.
	acked := sendUntilRefused(t, addr, func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
	})
	lines = append(lines, <-rest...)
	err = cmd.Wait()
	if err != nil {
		t.Errorf("the program exited with %v, want 0; stderr:\n%s", err, stderr.String())
	}
	checkFlushed(t, acked, events, lines)
}

// checkFlushed checks that every acknowledged event is in the store, once,
// and that the app's log shows the stop in order: the server's graceful
// shutdown cut short by its share of the budget, the server stopped, every
// worker's batch flushed, then the store closed with every event.
func checkFlushed(t *testing.T, acked []string, events string, lines []string) {
	t.Helper()
	b, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	stored := strings.Fields(string(b)) // one event a line, none with spaces
	seen := make(map[string]int, len(stored))
	for _, e := range stored {
		seen[e]++
	}
	lost := 0
	for _, e := range acked {
		if seen[e] == 0 {
			lost++
		}
	}
	for e, n := range seen {
		if n > 1 {
			t.Errorf("event %q stored %d times", e, n)
		}
	}
	t.Logf("%d events acknowledged, %d stored", len(acked), len(stored))
	if len(acked) < 400 {
		t.Errorf("%d events acknowledged before the stop, want at least 400", len(acked))
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged events not in the store", lost, len(acked))
	}

	want := []string{"listening on ", "graceful shutdown cut short", "server stopped",
		"worker ", "worker ", "worker ", "worker ", "store closed: "}
	var got []string
	atClose := 0
	for _, l := range lines {
		if i := slices.IndexFunc(want, func(w string) bool { return strings.HasPrefix(l, w) }); i >= 0 {
			got = append(got, want[i])
		}
		var id, n, all int
		if _, err := fmt.Sscanf(l, "worker %d closed: %d events at close, %d in all", &id, &n, &all); err == nil {
			atClose += n
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the app's log:\n%s\nwant lines starting, in this order, with %q", strings.Join(lines, "\n"), want)
	}
	if wantLine := fmt.Sprintf("store closed: %d events", len(stored)); !slices.Contains(lines, wantLine) {
		t.Errorf("the app's log:\n%s\nwant %q", strings.Join(lines, "\n"), wantLine)
	}
	if atClose == 0 {
		t.Error("no worker had an event left to write at close: the test did not test the flush at stop")
	}
}

// holdRequest opens a request that never ends: its headers are read and
// the handler is waiting for the rest of its body (the server has sent 100
// Continue), so a graceful shutdown waits for it.
func holdRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, hang)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(hang))
	fmt.Fprintf(conn, "POST /event HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n", addr)
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100 ") {
		t.Fatalf("slow client: got %q, %v; want 100 Continue", status, err)
	}
	if _, err := conn.Write([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	return conn
}

// sendUntilRefused sends events from 8 clients, a third of the requests to
// /events with three events each, the others to /event, until the server
// refuses them. Once 400 events are acknowledged it calls stop, while the
// clients go on. It returns the acknowledged events.
func sendUntilRefused(t *testing.T, addr string, stop func()) []string {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: hang}
	var (
		mu      sync.Mutex
		acked   []string
		n       atomic.Int64
		stopped = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
	)
	for c := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				path, events := "/event", []string{fmt.Sprintf("c%d-%d", c, i)}
				if i%3 == 2 {
					path, events = "/events", []string{events[0] + "a", events[0] + "b", events[0] + "c"}
				}
				resp, err := client.Post("http://"+addr+path, "text/plain", strings.NewReader(strings.Join(events, "\n")))
				if err != nil {
					return // refused: the server has stopped
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					return // 503: the pool has stopped
				}
				mu.Lock()
				acked = append(acked, events...)
				mu.Unlock()
				if n.Add(int64(len(events))) >= 400 {
					once.Do(func() { go func() { defer close(stopped); stop() }() })
				}
			}
		})
	}
	wg.Wait()
	once.Do(func() { go func() { defer close(stopped); stop() }() }) // if it never got to 400
	select {
	case <-stopped:
	case <-time.After(hang):
		t.Fatal("the stop hung")
	}
	return acked
}

// syncBuffer is a buffer that goroutines may write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
