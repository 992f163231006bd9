package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// a11sha is the SHA-256 of b in hex.
func a11sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// a11tree is the regular files under root (symbolic links not followed)
// with their SHA-256, read here, independently of fxsum.
func a11tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[p] = a11sha(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// a11same asserts that the index holds exactly files.
func a11same(t *testing.T, what, dbFile string, files map[string]string) {
	t.Helper()
	got := indexRows(t, dbFile)
	n := 0
	for p, want := range files {
		if got[p] != want && n < 10 {
			n++
			t.Errorf("%s: %q: digest %q, want %q", what, p, got[p], want)
		}
	}
	for p := range got {
		if _, ok := files[p]; !ok && n < 10 {
			n++
			t.Errorf("%s: %q indexed, but it is not a file of the tree", what, p)
		}
	}
}

// TestAttack11_RerunSeesEveryKindOfChange: in a folder of 200 files (the
// walker stats the second half on another goroutine), under folders that
// hold only folders and 120 levels deep, a rerun hashes exactly what
// changed and removes exactly what went: a file turned into a folder and a
// folder into a file, a file replaced by a symbolic link and by a FIFO,
// times set to an older date or changed by a nanosecond, a grown file,
// folders deleted and renamed, new files in folders of folders and deep
// down, names with a newline, a backslash, invalid UTF-8, 255 bytes.
func TestAttack11_RerunSeesEveryKindOfChange(t *testing.T) {
	root := t.TempDir()
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	old := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	wide := filepath.Join(root, "wide")
	for i := range 200 {
		a11write(t, filepath.Join(wide, fmt.Sprintf("f%03d", i)), []byte(fmt.Sprintf("file %d", i)), old)
	}
	deep := root
	for i := range 120 {
		deep = filepath.Join(deep, fmt.Sprintf("l%d", i))
	}
	a11write(t, filepath.Join(deep, "bottom"), []byte("bottom"), old)
	a11write(t, filepath.Join(root, "only", "a", "b", "c", "leaf"), []byte("leaf"), old)
	if err := os.MkdirAll(filepath.Join(root, "only", "x", "y", "z"), 0o755); err != nil {
		t.Fatal(err)
	}
	nasty := []string{"new\nline", `back\slash`, "\xff\xfe invalid", strings.Repeat("n", 255), "tab\tcr\r"}
	for i, n := range nasty {
		a11write(t, filepath.Join(root, "nasty", n), []byte(fmt.Sprint("nasty", i)), old)
	}
	for i := range 70 {
		a11write(t, filepath.Join(root, "gone", "sub", fmt.Sprintf("g%02d", i)), []byte("g"), old)
		a11write(t, filepath.Join(root, "moved", fmt.Sprintf("m%02d", i)), []byte("m"), old)
	}
	a11ok(t, work, root)
	a11same(t, "first run", dbFile, a11tree(t, root))
	r := a11ok(t, work, root)
	if s := parseSummary(t, r.stderr); s.hashed != 0 {
		t.Fatalf("unchanged rerun: %+v, want nothing hashed", s)
	}

	older := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	w := func(i int) string { return filepath.Join(wide, fmt.Sprintf("f%03d", i)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hashed := 0
	// file -> folder (with a file: hashed), early and late in the listing
	for _, i := range []int{3, 150} {
		must(os.Remove(w(i)))
		a11write(t, filepath.Join(w(i), "inside"), []byte("inside"), old)
		hashed++
	}
	must(os.Chtimes(w(10), older, older)) // touch -d to an older date
	must(os.Chtimes(w(170), older, older))
	hashed += 2
	ns := old.Add(time.Nanosecond) // a nanosecond later
	must(os.Chtimes(w(120), ns, ns))
	hashed++
	a11write(t, w(180), []byte("file 180 grown"), old) // size
	hashed++
	must(os.Remove(w(190))) // a symbolic link: not followed, row removed
	must(os.Symlink(w(0), w(190)))
	must(os.Remove(w(195))) // a FIFO: not a regular file, row removed
	must(syscall.Mkfifo(w(195), 0o644))
	must(os.Remove(w(199))) // the last one deleted
	a11write(t, filepath.Join(wide, "f999"), []byte("new"), old)
	hashed++
	// folder -> file
	must(os.RemoveAll(filepath.Join(root, "only", "a")))
	a11write(t, filepath.Join(root, "only", "a"), []byte("was a folder"), old)
	hashed++
	a11write(t, filepath.Join(root, "only", "x", "y", "z", "new"), []byte("new"), old) // in folders of folders
	hashed++
	a11write(t, filepath.Join(deep, "bottom2"), []byte("bottom2"), old)
	hashed++
	must(os.RemoveAll(filepath.Join(root, "gone")))
	must(os.Rename(filepath.Join(root, "moved"), filepath.Join(root, "moved2"))) // 70 new paths
	hashed += 70
	a11write(t, filepath.Join(root, "nasty", nasty[2]), []byte("changed!"), old)
	hashed++

	r = a11ok(t, work, root)
	s := parseSummary(t, r.stderr)
	want := a11tree(t, root)
	if s.hashed != hashed || s.indexed != len(want) {
		t.Errorf("rerun: summary %+v, want %d hashed, %d indexed", s, hashed, len(want))
	}
	a11same(t, "rerun", dbFile, want)
	m := a11ok(t, work, "manifest").stdout
	if bad := a11check(t, "sha256sum", "/", m, len(want)); bad != "" {
		t.Errorf("sha256sum -c: %s", bad)
	}
	r = a11ok(t, work, root)
	if s := parseSummary(t, r.stderr); s.hashed != 0 || s.removed != 0 {
		t.Errorf("unchanged rerun after: %+v, want nothing hashed or removed", s)
	}
	a11ok(t, work, "verify")
}

// TestAttack11_TreeChangingDuringReruns: folders deleted, made again and
// renamed, files turned into folders and back, while reruns walk the tree
// (folders of 120 files, stat ahead). The runs may name what vanished and
// exit 1, but never crash or fail otherwise; once the tree is left alone,
// a rerun makes the index exactly the tree.
func TestAttack11_TreeChangingDuringReruns(t *testing.T) {
	root := t.TempDir()
	work := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(dir string, n int) {
		for i := range n {
			p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
			_ = os.MkdirAll(dir, 0o755)
			if os.WriteFile(p, []byte(p), 0o644) == nil {
				_ = os.Chtimes(p, old, old)
			}
		}
	}
	for i := range 24 {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i))
		mk(d, 120)
		mk(filepath.Join(d, "sub", "deeper"), 70)
	}
	a11ok(t, work, "--quiet", root)
	stop := a11churn(func(i int) {
		d := filepath.Join(root, fmt.Sprintf("d%02d", (i*7)%24))
		switch i % 6 {
		case 0:
			_ = os.RemoveAll(d)
		case 1:
			mk(d, 60+i%90)
		case 2:
			if os.Rename(d, d+".ren") == nil {
				_ = os.RemoveAll(d + ".ren")
			}
		case 3:
			f := filepath.Join(d, fmt.Sprintf("f%03d", i%120))
			if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
				_ = os.Remove(f)
				mk(f, 2)
			} else if err == nil {
				_ = os.RemoveAll(f)
				_ = os.WriteFile(f, []byte("file again"), 0o644)
			}
		case 4:
			mk(filepath.Join(d, "sub", "deeper"), i%100)
		case 5:
			_ = os.RemoveAll(filepath.Join(d, "sub"))
		}
		time.Sleep(200 * time.Microsecond)
	})
	for i := range 15 {
		r, hung := a11(t, work, 5*time.Minute, root)
		if hung || (r.code != 0 && r.code != 1) || strings.Contains(r.stderr, "panic") {
			stop()
			t.Fatalf("run %d while the tree changes: exit %d (hung %v); stderr:\n%s", i, r.code, hung, r.stderr)
		}
	}
	stop()
	integrityCheck(t, filepath.Join(work, "fxsum.db"))
	a11ok(t, work, root)
	a11same(t, "after the tree was left alone", filepath.Join(work, "fxsum.db"), a11tree(t, root))
}
