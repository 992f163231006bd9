package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var a16fURLRe = regexp.MustCompile(`start workers with: fxsum worker --queue (nats://[0-9.]+:[0-9]+)`)

// a16fQueueURL waits for the URL an index --queue embedded --listen prints.
func a16fQueueURL(t *testing.T, p *a16fProc) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := a16fURLRe.FindStringSubmatch(p.Err.String()); m != nil {
			return m[1]
		}
		if p.Exited() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no queue URL printed: %s", p.Err.String())
	return ""
}

// "A worker whose server has gone (an embedded one whose index run ended)
// keeps retrying until it is stopped; its stop then takes at most 3 s."
// Once the index run that embeds its server has ended, the worker is still
// running, and SIGTERM stops it cleanly, with its count (the guard here is
// 30 s, ten times the promise). The README first read as if the worker
// stopped on its own: a worker cannot tell a server that ended from one
// that restarts, and keeps retrying.
func TestA16fQueueWorkerStopsWhenEmbeddedServerEnds(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 2, 20)
	db := filepath.Join(base, "x.db")
	idx := a16fStart(t, base, "--db", db, "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", root)
	url := a16fQueueURL(t, idx)
	w := a16fStart(t, base, "worker", "--queue", url, "--workers", "1")
	r, ok := idx.Wait(120 * time.Second)
	if !ok || r.Code != 0 {
		t.Fatalf("index run: %v", r)
	}
	a16fSameMap(t, "queue index", a16fManifest(t, base, db), a16fExpected(t, "sha256", root))
	w.Signal(syscall.SIGTERM)
	wr, ok := w.Wait(30 * time.Second)
	if !ok {
		w.Signal(syscall.SIGKILL)
		w.Wait(30 * time.Second)
		t.Fatalf("the worker whose embedded server ended was still running 30 s after SIGTERM (README: at most 3 s)")
	}
	if wr.Code != 0 || !strings.Contains(wr.Err, "worker: hashed") {
		t.Errorf("worker stopped by SIGTERM after its server ended: want exit 0 and its count:\n%v", wr)
	}
}

// "A worker that dies loses nothing": an index process with no workers of
// its own and two worker processes, one killed with SIGKILL while it holds
// files; the index ends complete and correct, odd names included, and it is
// what a local run makes.
func TestA16fQueueWorkerKilledLosesNothing(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 6, 300)
	for _, n := range []string{"new\nline", "back\\slash", "\xff\xfe", "-dash", " sp "} {
		a16fWrite(t, filepath.Join(root, "odd", n), n)
	}
	for _, n := range []string{"b1", "b2", "b3", "b4", "b5", "b6"} {
		data := make([]byte, 24<<20)
		for i := range data {
			data[i] = byte(i*13) ^ n[1]
		}
		if err := os.WriteFile(filepath.Join(root, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := a16fExpected(t, "sha256", root)
	for p := range want {
		a16fOld(t, p, 0) // not racily clean: the rerun below must skip them all
	}
	db := filepath.Join(base, "q.db")
	idx := a16fStart(t, base, "--db", db, "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", root)
	url := a16fQueueURL(t, idx)
	w1 := a16fStart(t, base, "worker", "--queue", url, "--workers", "1")
	// let w1 take files, then kill it
	time.Sleep(300 * time.Millisecond)
	w1.Signal(syscall.SIGKILL)
	w1.Wait(30 * time.Second)
	w2 := a16fStart(t, base, "worker", "--queue", url, "--workers", "2")
	r, ok := idx.Wait(180 * time.Second)
	w2.Signal(syscall.SIGTERM)
	w2.Wait(60 * time.Second)
	if !ok {
		t.Fatalf("the index run did not finish: %s", idx.Err.String())
	}
	if r.Code != 0 {
		t.Errorf("index with a killed worker: %v", r)
	}
	a16fSameMap(t, "queue index after a killed worker", a16fManifest(t, base, db), want)
	// an unchanged rerun through the queue publishes nothing and hashes nothing
	r = a16fRun(t, base, "--db", db, "--queue", "embedded", root)
	if s := a16fParseSummary(t, r.Err); r.Code != 0 || s.hashed != 0 || s.skipped != len(want) {
		t.Errorf("unchanged rerun through the queue: %+v %v", s, r)
	}
}

// --idle-timeout with no worker: exit 1 with one line (besides the URL
// line); what was committed stays and a local run completes the index.
func TestA16fQueueIdleTimeoutThenLocalResume(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 2, 30)
	db := filepath.Join(base, "x.db")
	r := a16fRunOpt(t, a16fOpts{Dir: base, Timeout: 90 * time.Second}, "--db", db, "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", "--idle-timeout", "2s", root)
	var other []string
	for _, l := range a16fLines(r.Err) {
		if !strings.Contains(l, "start workers with") {
			other = append(other, l)
		}
	}
	if r.Code != 1 || len(other) != 1 || !strings.Contains(other[0], "idle-timeout") {
		t.Errorf("idle timeout: want exit 1 and one line, got %v", r)
	}
	if rr := a16fRun(t, base, "--db", db, root); rr.Code != 0 {
		t.Fatalf("local run after the idle timeout: %v", rr)
	}
	a16fSameMap(t, "after idle timeout and a local run", a16fManifest(t, base, db), a16fExpected(t, "sha256", root))
}

// "A worker stops on SIGINT or SIGTERM: it stops taking files, lets those in
// hand finish and acks them ... and prints how many files it hashed"; what it
// did not take goes to the next worker, and the index is complete.
func TestA16fQueueWorkerSigtermHandsBack(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fTree(t, root, 10, 400)
	want := a16fExpected(t, "sha256", root)
	db := filepath.Join(base, "q.db")
	idx := a16fStart(t, base, "--db", db, "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", root)
	url := a16fQueueURL(t, idx)
	w1 := a16fStart(t, base, "worker", "--queue", url, "--workers", "1")
	time.Sleep(400 * time.Millisecond)
	w1.Signal(syscall.SIGTERM)
	r1, ok := w1.Wait(60 * time.Second)
	if !ok {
		t.Fatalf("worker ignores SIGTERM: %v", r1)
	}
	if r1.Code != 0 || !regexp.MustCompile(`hashed \d+ files`).MatchString(r1.Err) {
		t.Errorf("worker stopped by SIGTERM: want exit 0 and how many files it hashed, got %v", r1)
	}
	w2 := a16fStart(t, base, "worker", "--queue", url)
	r, ok := idx.Wait(120 * time.Second)
	w2.Signal(syscall.SIGTERM)
	w2.Wait(60 * time.Second)
	if !ok || r.Code != 0 {
		t.Fatalf("index: %v", r)
	}
	a16fSameMap(t, "after a worker stopped by SIGTERM", a16fManifest(t, base, db), want)
}

// An index run on a server that goes away (here another index run's
// embedded server, killed): after --idle-timeout, exit 1 with one line that
// says the server is unreachable; a local run then completes the index.
func TestA16fQueueServerGoneGivesUpWithOneLine(t *testing.T) {
	base := a16fDir(t)
	a := filepath.Join(base, "A")
	b := filepath.Join(base, "B")
	a16fTree(t, a, 2, 50)
	a16fTree(t, b, 2, 50)
	host := a16fStart(t, base, "--db", filepath.Join(base, "a.db"), "--queue", "embedded", "--listen", "127.0.0.1:0", "--workers", "0", "--idle-timeout", "120s", a)
	url := a16fQueueURL(t, host)
	db := filepath.Join(base, "b.db")
	p := a16fStart(t, base, "--db", db, "--queue", url, "--workers", "0", "--idle-timeout", "3s", b)
	time.Sleep(time.Second)
	host.Signal(syscall.SIGKILL)
	host.Wait(30 * time.Second)
	r, ok := p.Wait(90 * time.Second)
	if !ok {
		t.Fatalf("the run on a server that went away does not give up: %s", p.Err.String())
	}
	lines := a16fLines(r.Err)
	if r.Code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "unreachable") || !strings.Contains(lines[0], url) {
		t.Errorf("server gone: want exit 1 and one line saying %s is unreachable, got %v", url, r)
	}
	if rr := a16fRun(t, base, "--db", db, b); rr.Code != 0 {
		t.Fatalf("local run after: %v", rr)
	}
	a16fSameMap(t, "after the server went away", a16fManifest(t, base, db), a16fExpected(t, "sha256", b))
}
