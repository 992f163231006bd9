package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
)

// The tests of fxsum across machines: index --queue and worker --queue, as
// processes of the binary built by TestMain, on an embedded NATS server in
// the indexing process, on loopback only.

// procWait is how long a test waits for a process before it gives up on
// it: far more than any run takes, so that only a hang fails the test.
const procWait = 3 * time.Minute

// proc is a running fxsum process whose stderr is read line by line.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	lines chan string // every line of stderr; closed at its end

	mu  sync.Mutex
	all strings.Builder // every line read so far
}

// start starts fxsum with args in dir, the environment plus env. The test
// kills it at its end if it still runs.
func start(t *testing.T, name, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: command(t, dir, env, args...), lines: make(chan string, 1024)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the process exits and the pipe closes
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.all.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for lines any more; all has them
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			p.wait()
		}
	})
	return p
}

// stderr is what the process wrote on stderr so far.
func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}

// waitLine waits for a line of stderr that matches re and returns its
// submatches; it fails the test if the process ends first.
func (p *proc) waitLine(re *regexp.Regexp) []string {
	p.t.Helper()
	timeout := time.After(procWait)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s ended without a line matching %q; stderr:\n%s", p.name, re, p.stderr())
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			p.t.Fatalf("%s: no line matching %q after %v; stderr:\n%s", p.name, re, procWait, p.stderr())
		}
	}
}

// wait waits for the process to exit and returns its exit code; it kills
// it and fails the test after procWait.
func (p *proc) wait() int {
	p.t.Helper()
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for range p.lines { // to the end of stderr, so that Wait returns
		}
		_ = p.cmd.Wait()
	}()
	select {
	case <-exited:
	case <-time.After(procWait):
		_ = p.cmd.Process.Kill()
		<-exited
		p.t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, procWait, p.stderr())
	}
	return p.cmd.ProcessState.ExitCode()
}

// manifestOf runs fxsum manifest in work.
func manifestOf(t *testing.T, work string) string {
	t.Helper()
	return mustOK(t, fxsum(t, work, nil, "manifest")).stdout
}

// TestQueueEmbeddedIsTheLocalIndex: index --queue embedded makes the index
// a local run makes, which sha256sum -c passes, and reruns with the queue
// are incremental: unchanged files are not published at all.
func TestQueueEmbeddedIsTheLocalIndex(t *testing.T) {
	tr := genTree(t, 600, 1<<20, 3<<20)
	local, queued := t.TempDir(), t.TempDir()
	mustOK(t, fxsum(t, local, nil, tr.root))
	r := mustOK(t, fxsum(t, queued, nil, "--queue", "embedded", "--workers", "2", tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != len(tr.files) || s.indexed != len(tr.files) || s.errors != 0 {
		t.Errorf("summary %+v, want %d hashed and indexed", s, len(tr.files))
	}
	checkIndex(t, filepath.Join(queued, "fxsum.db"), tr)
	m := manifestOf(t, queued)
	if want := manifestOf(t, local); m != want {
		t.Errorf("the manifest of --queue embedded differs from the local one:\n%s\nwant:\n%s", m, want)
	}
	sha256sumCheck(t, "/", m, len(tr.files))

	r = mustOK(t, fxsum(t, queued, nil, "--queue", "embedded", tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != 0 || s.skipped != len(tr.files) {
		t.Errorf("unchanged rerun: summary %+v, want 0 hashed, %d skipped", s, len(tr.files))
	}

	changed, content := filepath.Join(tr.root, "d1", "e1", "file-0001"), []byte("changed")
	if err := os.WriteFile(changed, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	tr.files[changed] = hex.EncodeToString(sum[:])
	tr.remove(t, filepath.Join(tr.root, "one"))
	r = mustOK(t, fxsum(t, queued, nil, "--queue", "embedded", tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != 1 || s.removed != 1 || s.skipped != len(tr.files)-1 {
		t.Errorf("rerun after a change: summary %+v, want 1 hashed, 1 removed, %d skipped", s, len(tr.files)-1)
	}
	checkIndex(t, filepath.Join(queued, "fxsum.db"), tr)
}

var (
	queueURLLine = regexp.MustCompile(`^fxsum: queue (nats://127\.0\.0\.1:\d+) \(run [0-9a-f]+\)`)
	workerDone   = regexp.MustCompile(`^fxsum: worker: hashed (\d+) files`)
	// The first line of a worker, once it takes files and handles signals.
	workerStarted = regexp.MustCompile(`^fxsum: worker: \d+ workers hashing files from `)
)

// TestQueueWorkerKilled: an indexing process with the embedded server on
// loopback and no worker of its own, and two worker processes. The first
// hashes some files, then holds those it took next, un-acked
// (FXSUM_TEST_STALL_AFTER), and is killed with SIGKILL while the second
// works: its files go to the second, and the index is complete and right.
func TestQueueWorkerKilled(t *testing.T) {
	tr := genTree(t, 400, 256<<10)
	work := t.TempDir()
	env := []string{envAckWait + "=2s"} // the dead worker's files come back after 2s
	indexer := start(t, "index", work, env, "index", "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", tr.root)
	url := indexer.waitLine(queueURLLine)[1]
	t.Logf("queue %s", url)

	const stallAfter = 25
	doomed := start(t, "worker 1", work, append(env, envStallAfter+"="+strconv.Itoa(stallAfter)), "worker", "--queue", url, "--workers", "2")
	doomed.waitLine(regexp.MustCompile("^" + regexp.QuoteMeta(stallMessage) + "$"))
	survivor := start(t, "worker 2", work, env, "worker", "--queue", url, "--workers", "2")
	survivor.waitLine(workerStarted)
	if err := doomed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	doomed.wait()
	if ws, _ := doomed.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("worker 1 was not killed by SIGKILL: %v; stderr:\n%s", doomed.cmd.ProcessState, doomed.stderr())
	}

	if code := indexer.wait(); code != 0 {
		t.Fatalf("index: exit %d, want 0; stderr:\n%s", code, indexer.stderr())
	}
	if s := parseSummary(t, indexer.stderr()); s.hashed != len(tr.files) || s.indexed != len(tr.files) || s.errors != 0 {
		t.Errorf("summary %+v, want %d hashed and indexed", s, len(tr.files))
	}
	if err := survivor.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := survivor.wait(); code != 0 {
		t.Errorf("worker 2: exit %d after SIGTERM, want 0; stderr:\n%s", code, survivor.stderr())
	}
	m := workerDone.FindStringSubmatch(lastLine(survivor.stderr()))
	if m == nil {
		t.Fatalf("worker 2 did not say how many files it hashed; stderr:\n%s", survivor.stderr())
	}
	// Worker 1 hashed stallAfter files before it stalled, at most: worker 2
	// hashed the rest, and the files worker 1 held when it was killed.
	if n, _ := strconv.Atoi(m[1]); n < len(tr.files)-stallAfter {
		t.Errorf("worker 2 hashed %d files, want at least %d", n, len(tr.files)-stallAfter)
	}

	dbFile := filepath.Join(work, "fxsum.db")
	integrityCheck(t, dbFile)
	checkIndex(t, dbFile, tr)
	sha256sumCheck(t, "/", manifestOf(t, work), len(tr.files))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestQueueWithoutWorkers: an index run whose files no worker takes says so
// while it waits, and gives up after --idle-timeout with one line and exit
// status 1, instead of waiting forever.
func TestQueueWithoutWorkers(t *testing.T) {
	tr := genTree(t, 20)
	work := t.TempDir()
	p := start(t, "index", work, nil, "index", "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", "--idle-timeout", "1s", tr.root)
	url := p.waitLine(queueURLLine)[1]
	if code := p.wait(); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, p.stderr())
	}
	last := lastLine(p.stderr())
	for _, want := range []string{"no worker hashed a file for 1s", "0 of " + strconv.Itoa(len(tr.files)) + " files hashed", "fxsum worker --queue " + url} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q does not say %q", last, want)
		}
	}
}

// TestQueueBadInput: bad --queue input is one line on stderr and a non-zero
// exit status, never a hang.
func TestQueueBadInput(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "nats://" + l.Addr().String() // nothing listens there once closed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		give     []string
		wantCode int
		want     []string
	}{
		{"WorkerWithoutQueue", []string{"worker"}, 2, []string{"worker: --queue URL is required"}},
		{"WorkerEmbedded", []string{"worker", "--queue", "embedded"}, 2, []string{"give its URL"}},
		{"WorkerWithPath", []string{"worker", "--queue", unreachable, tr.root}, 2, []string{"unexpected argument"}},
		{"WorkerUnreachable", []string{"worker", "--queue", unreachable}, 1, []string{unreachable, "no servers available"}},
		{"IndexUnreachable", []string{"index", "--queue", unreachable, tr.root}, 1, []string{unreachable, "no servers available"}},
		{"ListenWithoutEmbedded", []string{"--listen", "127.0.0.1:0", tr.root}, 2, []string{"--listen: only with --queue embedded"}},
		{"NobodyCouldHash", []string{"--queue", "embedded", "--workers", "0", tr.root}, 2, []string{"no worker could reach the queue"}},
		{"QueueFlagOnManifest", []string{"manifest", "--queue", unreachable}, 2, []string{"--queue does not apply"}},
		{"BadIdleTimeout", []string{"--queue", "embedded", "--idle-timeout", "0s", tr.root}, 2, []string{"--idle-timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.name, work, nil, tt.give...)
			code := p.wait()
			stderr := p.stderr()
			if code != tt.wantCode || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and one line", code, stderr, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
		})
	}
}

var interruptedLine = regexp.MustCompile(`^interrupted: (\d+) of (\d+) files indexed$`)

// TestQueueInterrupt: Ctrl-C stops an index run with --queue while a
// worker holds files: it exits 130, what it committed stays committed, and
// a rerun completes the index.
func TestQueueInterrupt(t *testing.T) {
	tr := genTree(t, 200)
	work := t.TempDir()
	indexer := start(t, "index", work, nil, "index", "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", tr.root)
	url := indexer.waitLine(queueURLLine)[1]
	worker := start(t, "worker", work, []string{envStallAfter + "=30"}, "worker", "--queue", url, "--workers", "2")
	worker.waitLine(regexp.MustCompile("^" + regexp.QuoteMeta(stallMessage) + "$"))
	if err := indexer.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := indexer.wait(); code != 130 {
		t.Fatalf("index: exit %d after SIGINT, want 130; stderr:\n%s", code, indexer.stderr())
	}
	m := interruptedLine.FindStringSubmatch(lastLine(indexer.stderr()))
	if m == nil {
		t.Fatalf("index: no interrupted line last; stderr:\n%s", indexer.stderr())
	}
	dbFile := filepath.Join(work, "fxsum.db")
	integrityCheck(t, dbFile)
	rows := indexRows(t, dbFile)
	if n, _ := strconv.Atoi(m[1]); n != len(rows) || n > 30 {
		t.Errorf("index says %d files indexed, the database has %d, the worker hashed at most 30", n, len(rows))
	}
	for p, d := range rows {
		if tr.files[p] != d {
			t.Errorf("%q: digest %s committed, want %s", p, d, tr.files[p])
		}
	}
	if err := worker.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := worker.wait(); code != 0 {
		t.Errorf("worker: exit %d after SIGTERM, want 0; stderr:\n%s", code, worker.stderr())
	}

	r := mustOK(t, fxsum(t, work, nil, "--queue", "embedded", tr.root))
	if s := parseSummary(t, r.stderr); s.skipped != len(rows) || s.hashed != len(tr.files)-len(rows) {
		t.Errorf("rerun: summary %+v, want %d skipped and %d hashed", s, len(rows), len(tr.files)-len(rows))
	}
	checkIndex(t, dbFile, tr)
}

// TestQueueSharedByTwoRuns: two index runs by URL on one NATS server of
// their own (here in the test process, listening on loopback), as with a
// cluster: the first has no workers, the second has two, which hash its
// files and any of the first's. The second's index is complete, and it
// leaves nothing of itself on the server; a worker process then finishes
// the first run, whose index is complete too.
func TestQueueSharedByTwoRuns(t *testing.T) {
	srv, err := embedded.New(t.TempDir(), embedded.Listen("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := srv.ClientURL()
	first, second := genTree(t, 150), genTree(t, 120)
	workFirst, workSecond := t.TempDir(), t.TempDir()
	idle := start(t, "index 1", workFirst, nil, "index", "--queue", url, "--workers", "0", first.root)

	r := mustOK(t, fxsum(t, workSecond, nil, "index", "--queue", url, "--workers", "2", second.root))
	if s := parseSummary(t, r.stderr); s.hashed != len(second.files) {
		t.Errorf("index 2: summary %+v, want %d hashed", s, len(second.files))
	}
	checkIndex(t, filepath.Join(workSecond, "fxsum.db"), second)
	conn, err := jetstream.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	stream, err := conn.JetStream().Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	var consumers []string
	names := stream.ConsumerNames(t.Context())
	for name := range names.Name() {
		consumers = append(consumers, name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	// Index 1's consumer remains while it runs (it may have ended: index
	// 2's workers may have hashed all of its files).
	if len(consumers) > 1 {
		t.Errorf("result consumers on the server after index 2 ended: %q, want at most index 1's", consumers)
	}

	w := start(t, "worker", workFirst, nil, "worker", "--queue", url)
	w.waitLine(workerStarted) // its SIGTERM below is then a stop, not a kill
	if code := idle.wait(); code != 0 {
		t.Fatalf("index 1: exit %d, want 0; stderr:\n%s", code, idle.stderr())
	}
	checkIndex(t, filepath.Join(workFirst, "fxsum.db"), first)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(); code != 0 {
		t.Errorf("worker: exit %d, want 0; stderr:\n%s", code, w.stderr())
	}
}

// TestQueueServerGone: an index run whose queue's server goes away while it
// waits for workers gives up after --idle-timeout, with one line that says
// so and exit status 1, instead of waiting for the server forever.
func TestQueueServerGone(t *testing.T) {
	srv, err := embedded.New(t.TempDir(), embedded.Listen("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(srv.Shutdown) })
	url := srv.ClientURL()
	tr := genTree(t, 30)
	p := start(t, "index", t.TempDir(), nil, "index", "--queue", url, "--workers", "0", "--idle-timeout", "2s", tr.root)

	// Once the run has published its files, the server goes.
	conn, err := jetstream.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(procWait); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no file published after %v; stderr:\n%s", procWait, p.stderr())
		}
		s, err := conn.JetStream().Stream(t.Context(), workStream)
		if err != nil {
			continue // not made yet
		}
		info, err := s.Info(t.Context())
		if err == nil && info.State.Msgs == uint64(len(tr.files)) {
			break
		}
	}
	if err := conn.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	once.Do(srv.Shutdown)

	if code := p.wait(); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, p.stderr())
	}
	if last := lastLine(p.stderr()); !strings.Contains(last, "the queue's server at "+url+" is unreachable") {
		t.Errorf("last line %q does not say that the server is unreachable", last)
	}
}
