package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// a15fExpect is the manifest fxsum should print with --root root: the
// sha256sum lines of every regular file under it.
func a15fExpect(t *testing.T, root string) (string, int) {
	t.Helper()
	files := a15fRegular(t, root)
	return a15fReference(t, "sha256sum", root, files), len(files)
}

// TestAttack15FxsumRerunAfterEveryKindOfEdit: after a first index, the
// tree is edited in every way a user does (content edit, touch without
// change, file and folder renames, deletions, a file replaced by a folder
// and a folder by a file, a new file, a same-size edit with the mtime put
// back). The rerun must hash exactly what changed, remove exactly the rows
// of what is gone, and print the manifest of the new tree, except for the
// same-size edit that the README says only verify or --rehash find; verify
// must find it, and --rehash must fix it.
func TestAttack15FxsumRerunAfterEveryKindOfEdit(t *testing.T) {
	work := t.TempDir()
	root := filepath.Join(t.TempDir(), "tree")
	db := filepath.Join(work, "x.db")
	w := func(rel string, seed uint64, n int) { a15fWrite(t, filepath.Join(root, rel), a11random(seed, n)) }
	w("keep", 1, 100)
	w("edit", 2, 100)
	w("samesize", 3, 4096)
	w("touched", 4, 50)
	w("renamed", 5, 60)
	w("dirA/x", 6, 10)
	w("dirA/y", 7, 20)
	w("dirA/sub/z", 8, 30)
	w("deleted", 9, 40)
	w("becomesdir", 10, 40)
	w("becomesfile/p", 11, 1)
	w("becomesfile/q", 12, 2)
	for i := range 50 {
		w(fmt.Sprintf("bulk/f%02d", i), uint64(100+i), i*13)
	}
	r := a15fOK(t, work, "--db", db, root)
	if s := parseSummary(t, r.stderr); s.indexed != 62 || s.hashed != 62 {
		t.Fatalf("first run: %+v, want 62 indexed and hashed", s)
	}
	// The edits.
	w("edit", 22, 101)
	st, err := os.Stat(filepath.Join(root, "samesize"))
	if err != nil {
		t.Fatal(err)
	}
	sameMtime := st.ModTime()
	if err := os.WriteFile(filepath.Join(root, "samesize"), a11random(33, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, "samesize"), sameMtime, sameMtime); err != nil {
		t.Fatal(err)
	}
	touchT := time.Now().Add(-30 * time.Minute)
	if err := os.Chtimes(filepath.Join(root, "touched"), touchT, touchT); err != nil {
		t.Fatal(err)
	}
	mv := func(a, b string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, b)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(root, a), filepath.Join(root, b)); err != nil {
			t.Fatal(err)
		}
	}
	mv("renamed", "elsewhere/renamed2")
	mv("dirA", "dirB")
	if err := os.Remove(filepath.Join(root, "deleted")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "becomesdir")); err != nil {
		t.Fatal(err)
	}
	w("becomesdir/inner", 13, 5)
	if err := os.RemoveAll(filepath.Join(root, "becomesfile")); err != nil {
		t.Fatal(err)
	}
	w("becomesfile", 14, 6)
	w("new", 15, 7)

	r = a15fOK(t, work, "--db", db, root)
	s := parseSummary(t, r.stderr)
	// added: renamed2, dirB's 3, becomesdir/inner, becomesfile, new = 7
	// hashed: edit, touched and the 7 added = 9
	// removed: renamed, dirA's 3, deleted, becomesdir, becomesfile's 2 = 8
	want := summary{indexed: 62 - 8 + 7, hashed: 9, skipped: 62 - 8 + 7 - 9, removed: 8}
	if s != want {
		t.Errorf("rerun summary %+v, want %+v\n%s", s, want, r.stderr)
	}
	m := a15fOK(t, work, "--db", db, "manifest", "--root", root)
	exp, n := a15fExpect(t, root)
	// Everything but samesize is the tree as it is now.
	var got, wantL []string
	for _, l := range a15fLines(m.stdout) {
		if !strings.HasSuffix(l, "  samesize") {
			got = append(got, l)
		}
	}
	for _, l := range a15fLines(exp) {
		if !strings.HasSuffix(l, "  samesize") {
			wantL = append(wantL, l)
		}
	}
	a15fSameLines(t, "manifest after the rerun (samesize aside)", strings.Join(got, "\n"), strings.Join(wantL, "\n"))
	if len(a15fLines(m.stdout)) != n {
		t.Errorf("manifest has %d lines, the tree %d files", len(a15fLines(m.stdout)), n)
	}
	// verify must name samesize as changed, and only it.
	v := a15f(t, work, "--db", db, "verify")
	if v.code != 1 || len(a15fLines(v.stdout)) != 1 || !strings.HasPrefix(v.stdout, "changed: "+filepath.Join(root, "samesize")) {
		t.Errorf("verify after a same-size edit with mtime restored: exit %d, stdout %q, want exit 1 and one changed: line naming samesize", v.code, v.stdout)
	}
	// --rehash hashes everything and fixes it.
	r = a15fOK(t, work, "--db", db, "--rehash", root)
	if s := parseSummary(t, r.stderr); s.hashed != n || s.skipped != 0 || s.removed != 0 {
		t.Errorf("--rehash summary %+v, want all %d hashed", s, n)
	}
	m = a15fOK(t, work, "--db", db, "manifest", "--root", root)
	if m.stdout != exp {
		a15fSameLines(t, "manifest after --rehash", m.stdout, exp)
	}
	if bad := a15fCheck(t, "sha256sum", root, m.stdout, n); bad != "" {
		t.Errorf("sha256sum -c after --rehash: %s", bad)
	}
	if v := a15f(t, work, "--db", db, "verify"); v.code != 0 || v.stdout != "" {
		t.Errorf("verify after --rehash: exit %d %q", v.code, v.stdout)
	}
	// An unchanged rerun skips everything.
	r = a15fOK(t, work, "--db", db, root)
	if s := parseSummary(t, r.stderr); s.hashed != 0 || s.skipped != n || s.removed != 0 {
		t.Errorf("unchanged rerun summary %+v, want all %d skipped", s, n)
	}
}

// TestAttack15FxsumTreeChurningDuringIndex deletes, recreates and rewrites
// files and folders while fxsum indexes them. The run may exit 0 or 1 (with
// each problem one line naming a path of the tree), never crash; a rerun
// once the tree is still must give exactly the tree's manifest.
func TestAttack15FxsumTreeChurningDuringIndex(t *testing.T) {
	work := t.TempDir()
	root := filepath.Join(t.TempDir(), "tree")
	db := filepath.Join(work, "x.db")
	const dirs, per = 30, 150
	for d := range dirs {
		for f := range per {
			a15fWrite(t, filepath.Join(root, fmt.Sprintf("d%02d/f%03d", d, f)), a11random(uint64(d*1000+f), 100+f*7))
		}
	}
	var mu sync.Mutex
	stop := a11churn(func(i int) {
		mu.Lock()
		defer mu.Unlock()
		d := fmt.Sprintf("d%02d", i%dirs)
		switch i % 4 {
		case 0: // a folder vanishes and comes back
			_ = os.RemoveAll(filepath.Join(root, d))
			for f := range 10 {
				p := filepath.Join(root, d, fmt.Sprintf("f%03d", f))
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				_ = os.WriteFile(p, a11random(uint64(i+f), 50), 0o644)
			}
		case 1: // a file is rewritten with another size
			_ = os.WriteFile(filepath.Join(root, d, fmt.Sprintf("f%03d", i%per)), a11random(uint64(i), i%5000), 0o644)
		case 2: // a file vanishes
			_ = os.Remove(filepath.Join(root, d, fmt.Sprintf("f%03d", (i*7)%per)))
		case 3: // a file is renamed
			_ = os.Rename(filepath.Join(root, d, fmt.Sprintf("f%03d", (i*3)%per)), filepath.Join(root, d, fmt.Sprintf("g%05d", i)))
		}
		time.Sleep(200 * time.Microsecond)
	})
	for run := range 3 {
		r := a15f(t, work, "--db", db, "--workers", "3", root)
		if r.code != 0 && r.code != 1 {
			t.Errorf("run %d under churn: exit %d\n%s", run, r.code, a15fCut(r.stderr))
		}
		for _, l := range a15fErrLines(r.stderr) {
			if !strings.HasPrefix(l, "fxsum: "+root) {
				t.Errorf("run %d: a complaint that does not name a path of the tree: %q", run, l)
			}
		}
		if r.code == 1 && len(a15fErrLines(r.stderr)) == 0 {
			t.Errorf("run %d: exit 1 with no line naming what failed\n%s", run, r.stderr)
		}
	}
	stop()
	// Still: every file at least 2 s old is not racily clean.
	old := time.Now().Add(-time.Hour)
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			_ = os.Chtimes(p, old, old)
		}
		return nil
	})
	a15fOK(t, work, "--db", db, root)
	m := a15fOK(t, work, "--db", db, "manifest", "--root", root)
	exp, n := a15fExpect(t, root)
	a15fSameLines(t, "manifest after churn", m.stdout, exp)
	if bad := a15fCheck(t, "sha256sum", root, m.stdout, n); bad != "" {
		t.Errorf("sha256sum -c after churn: %s", bad)
	}
	if v := a15f(t, work, "--db", db, "verify"); v.code != 0 {
		t.Errorf("verify after churn: exit %d\n%s", v.code, a15fCut(v.stdout))
	}
}

// TestAttack15FxsumUnreadableAsNobody runs fxsum as nobody on a tree with an
// unreadable file, an unreadable folder and a folder that can be listed but
// not searched (mode 0644). Each is one line naming it, exit 1, the rest is
// indexed; and on a rerun after they became unreadable, the rows of their
// files are kept: the help says fxsum "removes the rows of files that are
// gone", and these are not gone, they were reported as not indexed.
func TestAttack15FxsumUnreadableAsNobody(t *testing.T) {
	a15fNeedRoot(t)
	base := t.TempDir()
	a15fOpenUp(t, base)
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "tree")
	w := func(rel string, seed uint64) { a15fWrite(t, filepath.Join(root, rel), a11random(seed, 100+int(seed))) }
	w("open/a", 1)
	w("locked/b", 2)
	w("nosearch/c", 3)
	w("file", 4)
	w("top", 5)
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			mode := os.FileMode(0o666)
			if fi.IsDir() {
				mode = 0o777
			}
			_ = os.Chmod(p, mode)
		}
		return nil
	})
	db := filepath.Join(base, "x.db")
	nb := a15fOpts{dir: base, nobody: true}
	if r := a15fRun(t, nb, "--db", db, root); r.code != 0 {
		t.Fatalf("first run as nobody: exit %d\n%s", r.code, r.stderr)
	}
	before := a15fDigests(t, a15fOK(t, base, "--db", db, "manifest").stdout)
	if len(before) != 5 {
		t.Fatalf("first run indexed %d files, want 5", len(before))
	}
	// Now: make them unreadable; "file" is also rewritten, so it must be read.
	a15fWrite(t, filepath.Join(root, "file"), []byte("rewritten"))
	for p, m := range map[string]os.FileMode{"file": 0, "locked": 0, "nosearch": 0o644} {
		if err := os.Chmod(filepath.Join(root, p), m); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = os.Chmod(filepath.Join(root, "locked"), 0o755)
		_ = os.Chmod(filepath.Join(root, "nosearch"), 0o755)
	})
	r := a15fRun(t, nb, "--db", db, root)
	if r.code != 1 {
		t.Errorf("rerun with unreadable things: exit %d, want 1\n%s", r.code, r.stderr)
	}
	errs := a15fErrLines(r.stderr)
	for _, culprit := range []string{"file", "locked", "nosearch"} {
		found := false
		for _, l := range errs {
			if strings.Contains(l, filepath.Join(root, culprit)) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line names %s: %q", culprit, errs)
		}
	}
	if len(errs) != 3 {
		t.Errorf("%d complaint lines, want 3 (one per culprit): %q", len(errs), errs)
	}
	after := a15fDigests(t, a15fOK(t, base, "--db", db, "manifest").stdout)
	for _, rel := range []string{"open/a", "top", "locked/b", "nosearch/c"} {
		p := filepath.Join(root, rel)
		if after[p] != before[p] {
			t.Errorf("%s: row %q after the rerun, want it kept as %q (the file is not gone, only unreadable)", rel, after[p], before[p])
		}
	}
	if _, ok := after[filepath.Join(root, "file")]; ok && after[filepath.Join(root, "file")] == a15fSha256([]byte("rewritten")) {
		t.Errorf("an unreadable file got the digest of content nobody could read")
	}
	// verify as nobody: the unreadable ones are "unreadable:", not "missing:".
	v := a15fRun(t, nb, "--db", db, "verify")
	if v.code != 1 {
		t.Errorf("verify: exit %d, want 1", v.code)
	}
	if strings.Contains(v.stdout, "missing: ") {
		t.Errorf("verify calls an unreadable file missing:\n%s", v.stdout)
	}
}
