package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
)

// Adversarial tests of index --queue and worker --queue, written from
// README.md and --help only. Every wait is bounded by procWait, far more
// than any run takes: only a hang trips it.

// coreutilsSums is what sha256sum (GNU coreutils) prints for every regular
// file under root, not following symbolic links, one line each, sorted.
func coreutilsSums(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("sh", "-c", `find -P "$1" -type f -print0 | xargs -0 -r sha256sum --`, "sh", root)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("find | sha256sum: %v", err)
	}
	return sortedLines(string(out))
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	slices.Sort(lines)
	return lines
}

// sameManifest compares a manifest with sha256sum's lines for the tree,
// naming the differences.
func sameManifest(t *testing.T, what, manifest string, want []string) {
	t.Helper()
	got := sortedLines(manifest)
	if slices.Equal(got, want) {
		return
	}
	var extra, missing []string
	for _, l := range got {
		if _, ok := slices.BinarySearch(want, l); !ok {
			extra = append(extra, l)
		}
	}
	for _, l := range want {
		if _, ok := slices.BinarySearch(got, l); !ok {
			missing = append(missing, l)
		}
	}
	t.Errorf("%s: the manifest (%d lines) is not sha256sum of the tree (%d lines)\nonly in the manifest: %q\nonly in sha256sum: %q",
		what, len(got), len(want), extra, missing)
}

// nastyTree writes files whose names and kinds need care: a newline, a
// carriage return, spaces, a backslash, invalid UTF-8, a leading dash,
// empty files, symbolic links (to a file, to a folder, dangling, a loop),
// a named pipe, and a deep path.
func nastyTree(t *testing.T, invalidUTF8 bool) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel string, data string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{
		"new\nline", "two\n\nnewlines\n", "cr\rname", " lead and trail ", `back\slash`, `\`,
		"-dash", "--", "ünï 日本", "tab\tname", "quote\"'", "star*?[x]", "json-\u2028-sep",
		"nul-ish-\x01\x7f", "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/file", "<html>&amp;",
	}
	if invalidUTF8 {
		names = append(names, "bad-utf8-\xff\xfe", "latin1-caf\xe9", "lone-cont-\x80", "surrogate-\xed\xa0\x80",
			"dir \xff with bad/inner file", "empty dir/empty \xff")
	}
	for i, n := range names {
		write(n, fmt.Sprintf("content %d of %q\n", i, n))
	}
	write("empty", "")
	write("empty dir/empty", "")
	if err := os.MkdirAll(filepath.Join(root, "truly empty dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"link-to-file":  "new\nline",
		"link-to-dir":   "deep",
		"dangling":      "does-not-exist",
		"loop":          "loop",
		"link-to-empty": "empty",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAttackQueueNastyNames: a local index, index --queue embedded with its
// own workers, and index --queue embedded --workers 0 with a worker process
// each give exactly sha256sum's lines for a tree of nasty names and kinds
// (valid UTF-8 names; attack_queue_regress_test.go has the invalid ones).
func TestAttackQueueNastyNames(t *testing.T) {
	checkNastyNames(t, nastyTree(t, false))
}

func checkNastyNames(t *testing.T, root string) {
	want := coreutilsSums(t, root)

	local := t.TempDir()
	r := fxsum(t, local, nil, root)
	t.Logf("local index: exit %d\n%s", r.code, r.stderr)
	sameManifest(t, "local", manifestOf(t, local), want)

	embeddedOwn := t.TempDir()
	r2 := fxsum(t, embeddedOwn, nil, "index", "--queue", "embedded", "--workers", "2", root)
	if r2.code != r.code {
		t.Errorf("--queue embedded: exit %d, the local index %d\n%s", r2.code, r.code, r2.stderr)
	}
	sameManifest(t, "--queue embedded --workers 2", manifestOf(t, embeddedOwn), want)

	remote := t.TempDir()
	indexer := start(t, "index", remote, nil, "index", "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", root)
	url := indexer.waitLine(queueURLLine)[1]
	w := start(t, "worker", remote, nil, "worker", "--queue", url, "--workers", "2")
	code := indexer.wait()
	if code != r.code {
		t.Errorf("--queue embedded --workers 0 and a worker: exit %d, the local index %d\n%s", code, r.code, indexer.stderr())
	}
	sameManifest(t, "--workers 0 and a worker process", manifestOf(t, remote), want)
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(); code != 0 {
		t.Errorf("worker: exit %d after SIGTERM, want 0\n%s", code, w.stderr())
	}
}

// sharedServer starts a NATS server with JetStream in the test process,
// listening on loopback, for index runs and workers by URL.
func sharedServer(t *testing.T) string {
	t.Helper()
	srv, err := embedded.New(t.TempDir(), embedded.Listen("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// tinyTree writes n tiny files (0-63 bytes) in 50 folders.
func tinyTree(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i%50))
		if i < 50 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte(strings.Repeat("x", i%64)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// workerHashed is the count of a stopped worker's last line.
func workerHashed(t *testing.T, w *proc) int {
	t.Helper()
	m := workerDone.FindStringSubmatch(lastLine(w.stderr()))
	if m == nil {
		t.Fatalf("%s did not say how many files it hashed; stderr:\n%s", w.name, w.stderr())
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestAttackQueueWorkersFirstTenThousand: two workers started before any
// index run, on a server of the test's own, then an index run of 10,000
// tiny files with no worker of its own: its manifest is sha256sum's, and
// the workers together hashed every file.
func TestAttackQueueWorkersFirstTenThousand(t *testing.T) {
	url := sharedServer(t)
	root := tinyTree(t, 10_000)
	want := coreutilsSums(t, root)
	work := t.TempDir()
	w1 := start(t, "worker 1", work, nil, "worker", "--queue", url, "--workers", "2")
	w2 := start(t, "worker 2", work, nil, "worker", "--queue", url, "--workers", "1")
	w1.waitLine(workerStarted)
	w2.waitLine(workerStarted)

	r := fxsum(t, work, nil, "index", "--queue", url, "--workers", "0", root)
	if r.code != 0 {
		t.Fatalf("index: exit %d\n%s", r.code, r.stderr)
	}
	if s := parseSummary(t, r.stderr); s.indexed != 10_000 || s.hashed != 10_000 || s.errors != 0 {
		t.Errorf("summary %+v, want 10000 indexed and hashed", s)
	}
	sameManifest(t, "10,000 tiny files", manifestOf(t, work), want)
	total := 0
	for _, w := range []*proc{w1, w2} {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		if code := w.wait(); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM, want 0\n%s", w.name, code, w.stderr())
		}
		total += workerHashed(t, w)
	}
	if total < 10_000 {
		t.Errorf("the workers hashed %d files together, want at least 10000", total)
	}
}

// TestAttackQueueWorkerSIGTERMMidRun: a worker stopped with SIGTERM while
// it holds files (it stalled after some) exits by itself and hands them
// back; a second worker finishes the run, whose index is complete.
func TestAttackQueueWorkerSIGTERMMidRun(t *testing.T) {
	tr := genTree(t, 300, 128<<10)
	work := t.TempDir()
	indexer := start(t, "index", work, nil, "index", "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", tr.root)
	url := indexer.waitLine(queueURLLine)[1]
	doomed := start(t, "worker 1", work, []string{envStallAfter + "=20"}, "worker", "--queue", url, "--workers", "2")
	doomed.waitLine(regexp.MustCompile("^" + regexp.QuoteMeta(stallMessage) + "$"))
	if err := doomed.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	doomed.wait() // a hang here fails the test; its code is its own affair
	if ws, _ := doomed.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		t.Errorf("worker 1 died of %v instead of stopping on SIGTERM\n%s", ws.Signal(), doomed.stderr())
	}
	survivor := start(t, "worker 2", work, nil, "worker", "--queue", url, "--workers", "2")
	if code := indexer.wait(); code != 0 {
		t.Fatalf("index: exit %d, want 0\n%s", code, indexer.stderr())
	}
	checkIndex(t, filepath.Join(work, "fxsum.db"), tr)
	sameManifest(t, "after a SIGTERM'd worker", manifestOf(t, work), coreutilsSums(t, tr.root))
	_ = survivor.cmd.Process.Signal(syscall.SIGTERM)
	if code := survivor.wait(); code != 0 {
		t.Errorf("worker 2: exit %d\n%s", code, survivor.stderr())
	}
}

// streamMsgs is how many messages a stream of the server at url holds.
func streamMsgs(t *testing.T, url, stream string) uint64 {
	t.Helper()
	conn, err := jetstream.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	s, err := conn.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitStreamMsgs waits until the stream holds n messages.
func waitStreamMsgs(t *testing.T, url, stream string, n uint64, p *proc) {
	t.Helper()
	conn, err := jetstream.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for deadline := time.Now().Add(procWait); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %d messages; stderr:\n%s", stream, n, p.stderr())
		}
		s, err := conn.JetStream().Stream(t.Context(), stream)
		if err != nil {
			continue
		}
		if info, err := s.Info(t.Context()); err == nil && info.State.Msgs == n {
			return
		}
	}
}

// TestAttackQueueInterruptOnSharedServer: Ctrl-C of an index run by URL
// purges its files still in the queue from the shared server and leaves
// its result consumer behind no longer; a rerun with a worker completes
// the index and leaves the work stream empty.
func TestAttackQueueInterruptOnSharedServer(t *testing.T) {
	url := sharedServer(t)
	tr := genTree(t, 120)
	work := t.TempDir()
	indexer := start(t, "index 1", work, nil, "index", "--queue", url, "--workers", "0", tr.root)
	waitStreamMsgs(t, url, workStream, uint64(len(tr.files)), indexer)
	if err := indexer.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := indexer.wait(); code != 130 {
		t.Fatalf("index: exit %d after SIGINT, want 130\n%s", code, indexer.stderr())
	}
	if m := interruptedLine.FindStringSubmatch(lastLine(indexer.stderr())); m == nil || m[1] != "0" {
		t.Errorf("last line %q, want interrupted: 0 of N", lastLine(indexer.stderr()))
	}
	if n := streamMsgs(t, url, workStream); n != 0 {
		t.Errorf("%d files of the interrupted run left in %s, want them purged", n, workStream)
	}

	w := start(t, "worker", work, nil, "worker", "--queue", url)
	w.waitLine(workerStarted)
	r := fxsum(t, work, nil, "index", "--queue", url, "--workers", "0", tr.root)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	checkIndex(t, filepath.Join(work, "fxsum.db"), tr)
	if n := streamMsgs(t, url, workStream); n != 0 {
		t.Errorf("%d messages left in %s after the rerun", n, workStream)
	}
	if n := streamMsgs(t, url, resultStream); n != 0 {
		t.Errorf("%d messages left in %s after the rerun", n, resultStream)
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(); code != 0 {
		t.Errorf("worker: exit %d\n%s", code, w.stderr())
	}
	// The worker hashed the rerun's files; none of the first run's came
	// to it after the purge (they would be hashed twice).
	if n := workerHashed(t, w); n != len(tr.files) {
		t.Errorf("the worker hashed %d files, want %d: the interrupted run's files were not all purged", n, len(tr.files))
	}
}

// TestAttackQueueFilesChangeWhileQueued: files removed, rewritten or
// truncated after the index run published them and before any worker
// hashed them: the index ends as sha256sum of the tree as it then is, and
// the exit status is 0 only if the summary has no error.
func TestAttackQueueFilesChangeWhileQueued(t *testing.T) {
	tr := genTree(t, 60)
	work := t.TempDir()
	indexer := start(t, "index", work, nil, "index", "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", tr.root)
	url := indexer.waitLine(queueURLLine)[1]
	waitStreamMsgs(t, url, workStream, uint64(len(tr.files)), indexer)

	var paths []string
	for p := range tr.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if err := os.Remove(paths[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paths[1], []byte("rewritten, and longer than it was before, surely: "+strings.Repeat("z", 9000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(paths[2], 0); err != nil {
		t.Fatal(err)
	}
	// Not racily clean when the worker reads them (see racyWindow): the
	// rerun below then has them unchanged.
	old := time.Now().Add(-time.Hour)
	for _, p := range paths[1:3] {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(paths[3], paths[3]+".renamed"); err != nil { // gone; the new name was never listed
		t.Fatal(err)
	}
	if err := os.Remove(paths[4]); err != nil { // a folder where a file was
		t.Fatal(err)
	}
	if err := os.Mkdir(paths[4], 0o755); err != nil {
		t.Fatal(err)
	}
	w := start(t, "worker", work, nil, "worker", "--queue", url)
	code := indexer.wait()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	w.wait()
	t.Logf("index: exit %d\n%s", code, indexer.stderr())

	want := coreutilsSums(t, tr.root)
	renamed := paths[3] + ".renamed"
	want = slices.DeleteFunc(want, func(l string) bool { return strings.HasSuffix(l, "  "+renamed) })
	sameManifest(t, "files changed while queued", manifestOf(t, work), want)
	s := parseSummary(t, indexer.stderr())
	if (code == 0) != (s.errors == 0) {
		t.Errorf("exit %d with %d errors in the summary", code, s.errors)
	}
	// A local rerun agrees: nothing to hash but the renamed file, nothing
	// to remove.
	r := fxsum(t, work, nil, tr.root)
	if s := parseSummary(t, r.stderr); s.hashed != 1 || s.removed != 0 {
		t.Errorf("a local rerun after the queued run: summary %+v, want only the renamed file hashed, nothing removed", s)
	}
}

// TestAttackQueueBadFlags: flags that do not fit --queue, worker or
// --listen are one line and a non-zero status, never a hang.
func TestAttackQueueBadFlags(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "nats://" + dead.Addr().String()
	_ = dead.Close()
	tests := []struct {
		name     string
		give     []string
		wantCode int // 0: any non-zero
		want     string
	}{
		{"WorkersZeroWithoutQueue", []string{"--workers", "0", tr.root}, 2, "--workers"},
		{"WorkersTooManyWithQueue", []string{"--queue", "embedded", "--workers", "257", tr.root}, 2, "--workers"},
		{"WorkersNegativeWithQueue", []string{"--queue", "embedded", "--workers", "-1", tr.root}, 2, "--workers"},
		{"WorkerWorkersZero", []string{"worker", "--queue", unreachable, "--workers", "0"}, 2, "--workers"},
		{"WorkerListen", []string{"worker", "--queue", unreachable, "--listen", "127.0.0.1:0"}, 2, "--listen"},
		{"WorkerIdleTimeout", []string{"worker", "--queue", unreachable, "--idle-timeout", "1s"}, 2, "--idle-timeout"},
		{"WorkerAlgo", []string{"worker", "--queue", unreachable, "--algo", "sha512"}, 2, "--algo"},
		{"WorkerRehash", []string{"worker", "--queue", unreachable, "--rehash"}, 2, "--rehash"},
		{"ListenWithURL", []string{"--queue", unreachable, "--listen", "127.0.0.1:0", tr.root}, 2, "--listen"},
		{"ListenGarbage", []string{"--queue", "embedded", "--listen", "not an address", tr.root}, 0, "not an address"},
		{"IdleTimeoutNegative", []string{"--queue", "embedded", "--idle-timeout", "-1s", tr.root}, 2, "--idle-timeout"},
		{"IdleTimeoutGarbage", []string{"--queue", "embedded", "--idle-timeout", "soon", tr.root}, 2, "idle-timeout"},
		{"VerifyQueue", []string{"verify", "--queue", unreachable}, 2, "--queue"},
		{"WorkerUnreachableList", []string{"worker", "--queue", unreachable + "," + unreachable}, 1, "no servers available"},
		{"QueueNotAURL", []string{"--queue", "http://" + dead.Addr().String(), tr.root}, 0, "http://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.name, work, nil, tt.give...)
			code := p.wait()
			stderr := p.stderr()
			if code == 0 || tt.wantCode != 0 && code != tt.wantCode || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d (0: any but 0) and one line", code, stderr, tt.wantCode)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not name %q", stderr, tt.want)
			}
		})
	}
}
