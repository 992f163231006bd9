package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var a16fSummaryRe = regexp.MustCompile(`indexed (\d+) files: hashed (\d+) \([^)]*\), skipped (\d+) unchanged, removed (\d+), (\d+) errors`)

type a16fSummary struct{ indexed, hashed, skipped, removed, errors int }

func a16fParseSummary(t *testing.T, stderr string) a16fSummary {
	t.Helper()
	m := a16fSummaryRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line in %q", stderr)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	return a16fSummary{n(1), n(2), n(3), n(4), n(5)}
}

// A rerun hashes exactly what changed: modified, added, renamed, replaced
// (same size, other time) files; removes the rows of removed and renamed
// ones; and the summary says so.
func TestA16fRerunDetectsEveryKindOfChange(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	for i := 0; i < 8; i++ {
		p := filepath.Join(root, fmt.Sprintf("f%d", i))
		a16fWrite(t, p, fmt.Sprintf("file %d\n", i))
		a16fOld(t, p, 0)
	}
	a16fWrite(t, filepath.Join(root, "sub", "deep"), "deep\n")
	a16fOld(t, filepath.Join(root, "sub", "deep"), 0)
	db := filepath.Join(base, "x.db")
	r := a16fRun(t, base, "--db", db, root)
	if r.Code != 0 {
		t.Fatal(r)
	}
	if s := a16fParseSummary(t, r.Err); s.hashed != 9 || s.indexed != 9 {
		t.Errorf("first run summary %+v, want 9 hashed", s)
	}

	// modified in place, other size
	a16fWrite(t, filepath.Join(root, "f0"), "modified, longer\n")
	a16fOld(t, filepath.Join(root, "f0"), time.Hour)
	// same size, other content, other time (cp then mv without -p)
	a16fWrite(t, filepath.Join(root, "tmp"), "FILE 1\n")
	a16fOld(t, filepath.Join(root, "tmp"), time.Minute)
	if err := os.Rename(filepath.Join(root, "tmp"), filepath.Join(root, "f1")); err != nil {
		t.Fatal(err)
	}
	// same size, same content, only the time differs by one nanosecond
	a16fWrite(t, filepath.Join(root, "f2"), "FILE 2\n")
	a16fOld(t, filepath.Join(root, "f2"), time.Nanosecond)
	// removed
	if err := os.Remove(filepath.Join(root, "f3")); err != nil {
		t.Fatal(err)
	}
	// renamed
	if err := os.Rename(filepath.Join(root, "f4"), filepath.Join(root, "renamed4")); err != nil {
		t.Fatal(err)
	}
	// a folder removed
	if err := os.RemoveAll(filepath.Join(root, "sub")); err != nil {
		t.Fatal(err)
	}
	// added
	a16fWrite(t, filepath.Join(root, "added", "n"), "new\n")
	a16fOld(t, filepath.Join(root, "added", "n"), 0)

	r = a16fRun(t, base, "--db", db, root)
	if r.Code != 0 {
		t.Fatal(r)
	}
	s := a16fParseSummary(t, r.Err)
	// hashed: f0, f1, f2, renamed4, added/n; skipped: f5, f6, f7; removed: f3, f4, sub/deep
	want := a16fSummary{indexed: 8, hashed: 5, skipped: 3, removed: 3}
	if s != want {
		t.Errorf("rerun summary %+v, want %+v\n%s", s, want, r.Err)
	}
	a16fSameMap(t, "after changes", a16fManifest(t, base, db), a16fExpected(t, "sha256", root))

	// and an unchanged rerun hashes nothing
	r = a16fRun(t, base, "--db", db, root)
	if s := a16fParseSummary(t, r.Err); r.Code != 0 || s.hashed != 0 || s.skipped != 8 || s.removed != 0 {
		t.Errorf("unchanged rerun: %+v %v", s, r)
	}
	// verify agrees
	if v := a16fRun(t, base, "verify", "--db", db); v.Code != 0 || v.Out != "" {
		t.Errorf("verify after reruns: %v", v)
	}
}

// "a file modified less than 2 s before it was read is hashed again by the
// next run": a file whose time is ahead of the clock (an NFS server's skew)
// is always "less than 2 s before" the read; rewritten with the same size and
// its time put back, the next run must see the new content.
func TestA16fRacyFutureMtimeRewriteIsCaught(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	p := filepath.Join(root, "f")
	a16fWrite(t, p, "hello\n")
	future := time.Now().Add(10 * time.Minute).Truncate(time.Second).Add(123456789)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	a16fWrite(t, p, "HELLO\n")
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	a16fSameMap(t, "after a same-size rewrite of a racy file", a16fManifest(t, base, db), a16fExpected(t, "sha256", root))
}

// "A file that changes while it is hashed is hashed once more, then
// reported": a file whose time moves all the time is named on stderr, the run
// exits 1, the other files are indexed, and a later quiet run indexes it.
func TestA16fFileChangingWhileHashedIsReported(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	big := filepath.Join(root, "big")
	data := make([]byte, 96<<20)
	for i := range data {
		data[i] = byte(i ^ i>>9)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a16fWrite(t, filepath.Join(root, "small"), "small\n")
	db := filepath.Join(base, "x.db")

	for _, algo := range []string{"sha256", "blake3"} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm := time.Now().Add(-time.Hour)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tm = tm.Add(time.Millisecond)
				_ = os.Chtimes(big, tm, tm)
			}
		}()
		r := a16fRun(t, base, "--db", db, "--rehash", "--algo", algo, root)
		close(stop)
		wg.Wait()
		if r.Code != 1 || !strings.Contains(r.Err, big) {
			t.Errorf("%s: a file changing during the whole run: want exit 1 and its name on stderr, got %v", algo, r)
		}
		if !strings.Contains(a16fRun(t, base, "manifest", "--db", db, "--algo", algo).Out, filepath.Join(root, "small")) {
			t.Errorf("%s: the other file was not indexed", algo)
		}
	}
	a16fOld(t, big, 0)
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	a16fSameMap(t, "after the file settled", a16fManifest(t, base, db), a16fExpected(t, "sha256", root))
}

// Files deleted while a run walks and hashes are dropped ("as a local run
// drops a file deleted since it was listed"): exit 0, and the next run's
// index is exactly what is left.
func TestA16fFilesVanishingDuringRunAreDropped(t *testing.T) {
	base := a16fDir(t)
	db := filepath.Join(base, "x.db")
	for round := 0; round < 4; round++ {
		root := filepath.Join(base, fmt.Sprintf("r%d", round))
		a16fTree(t, root, 10, 600)
		p := a16fStart(t, base, "--db", db, root)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := 9; d >= 0; d-- {
				for f := round; f < 600; f += 2 {
					_ = os.Remove(filepath.Join(root, fmt.Sprintf("d%02d", d), fmt.Sprintf("f%04d", f)))
				}
			}
		}()
		r, ok := p.Wait(120 * time.Second)
		wg.Wait()
		if !ok {
			t.Fatalf("round %d: run hangs", round)
		}
		if r.Code != 0 {
			t.Errorf("round %d: files deleted during the run: want exit 0, got %v", round, r)
		}
		r2 := a16fRun(t, base, "--db", db, root)
		if r2.Code != 0 {
			t.Errorf("round %d: rerun: %v", round, r2)
		}
		got := a16fManifest(t, base, db, "--root", root)
		want := map[string]string{}
		for p, d := range a16fExpected(t, "sha256", root) {
			rel, _ := filepath.Rel(root, p)
			want[rel] = d
		}
		a16fSameMap(t, fmt.Sprintf("round %d", round), got, want)
	}
}
