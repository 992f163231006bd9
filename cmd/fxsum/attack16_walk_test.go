package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func a16fKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func a16fRelKeys(t *testing.T, root string, m map[string]string) []string {
	t.Helper()
	var ks []string
	for k := range m {
		rel, err := filepath.Rel(root, k)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, rel)
	}
	sort.Strings(ks)
	return ks
}

// "`*`, `?` and `[a-z]` are the shell's": in the shell (POSIX), `[!a]` is a
// bracket expression that matches any character but `a`. So
// `--exclude '[!a]*'` skips every name that does not start with `a`.
func TestA16fExcludeBracketNegationIsTheShells(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	for _, n := range []string{"apple", "banana", "cherry", "!bang"} {
		a16fWrite(t, filepath.Join(root, n), n+"\n")
	}
	db := filepath.Join(base, "x.db")
	r := a16fRun(t, base, "--db", db, "--exclude", "[!a]*", root)
	if r.Code != 0 {
		t.Fatalf("index: %v", r)
	}
	got := a16fRelKeys(t, root, a16fManifest(t, base, db))
	want := []string{"apple"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("--exclude '[!a]*' (shell: names not starting with a): indexed %q, want %q", got, want)
	}
}

// The documented pattern rules, one by one, and "Rows of files that a later
// run excludes are removed from the index".
func TestA16fExcludeDocumentedRules(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	files := []string{
		"keep.txt", "x.tmp", "sub/y.tmp", "sub/deeper/z.tmp", // *.tmp at any depth
		"node_modules/m.js", "pkg/node_modules/n.js", // a name at any depth
		"build/cache/c.o", "build/keep.o", "other/build/cache/d.o", // build/cache: relative to PATH
		"docs/a.md", "sub/docs/b.md", // /docs: only at the top
		"foo/inside", "bar/foo", // foo/: folders only
		"a/b/c/f", "a/x/y/c/f", "a/**/c/g", // ** is *: one level (and * matches "**")
		"q1", "q22", // ?
		"k/[x]", "k/x", // brackets
	}
	for _, f := range files {
		a16fWrite(t, filepath.Join(root, f), f)
	}
	db := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	if n := len(a16fManifest(t, base, db)); n != len(files) {
		t.Fatalf("first run indexed %d files, want %d", n, len(files))
	}
	r := a16fRun(t, base, "--db", db,
		"--exclude", "*.tmp", "--exclude", "node_modules", "--exclude", "build/cache",
		"--exclude", "/docs", "--exclude", "foo/", "--exclude", "a/**/c", "--exclude", "q?",
		"--exclude", "k/[x]", root)
	if r.Code != 0 {
		t.Fatal(r)
	}
	got := a16fRelKeys(t, root, a16fManifest(t, base, db))
	want := []string{"a/x/y/c/f", "bar/foo", "build/keep.o", "k/[x]", "keep.txt", "other/build/cache/d.o", "q22", "sub/docs/b.md"}
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after the excluding rerun:\n got %q\nwant %q", got, want)
	}
	if s := a16fParseSummary(t, r.Err); s.removed != len(files)-len(want) {
		t.Errorf("the excluding rerun removed %d rows, want %d", s.removed, len(files)-len(want))
	}

	// "A PATH named on the command line is indexed even if it matches a pattern"
	db2 := filepath.Join(base, "y.db")
	if r := a16fRun(t, base, "--db", db2, "--exclude", "docs", "--exclude", "*.tmp", filepath.Join(root, "docs"), filepath.Join(root, "x.tmp")); r.Code != 0 {
		t.Fatal(r)
	}
	got = a16fRelKeys(t, root, a16fManifest(t, base, db2))
	if strings.Join(got, "|") != "docs/a.md|x.tmp" {
		t.Errorf("PATHs named on the command line that match a pattern: indexed %q", got)
	}
	// "a PATH inside another is walked as part of that one (its patterns with
	// a slash are relative to the outer PATH)"
	db3 := filepath.Join(base, "z.db")
	if r := a16fRun(t, base, "--db", db3, "--exclude", "sub/deeper", root, filepath.Join(root, "sub")); r.Code != 0 {
		t.Fatal(r)
	}
	for _, k := range a16fRelKeys(t, root, a16fManifest(t, base, db3)) {
		if strings.HasPrefix(k, "sub/deeper/") {
			t.Errorf("sub/deeper (relative to the outer PATH) was indexed: %q", k)
		}
	}
}

// --follow: loops terminate and are named; two links to one folder are both
// walked; links to FIFOs and devices are not read; without --follow links are
// not indexed, and a later run without --follow removes the rows found
// through links.
func TestA16fFollowLoopsFifosAndDevices(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	out := filepath.Join(base, "out")
	a16fWrite(t, filepath.Join(root, "d", "a"), "a\n")
	a16fWrite(t, filepath.Join(out, "sub", "o"), "o\n")
	links := map[string]string{
		"d/loop":     "../../r", // back to the root
		"d/self":     ".",
		"x1":         "../out",
		"x2":         "../out",
		"x3":         "../out/sub",
		"alink":      "d/a",
		"zero":       "/dev/zero",
		"fifolink":   "fifo",
		"dangling_x": "nowhere",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(base, "x.db")
	r := a16fRunOpt(t, a16fOpts{Dir: base, Timeout: 60 * time.Second}, "--db", db, "--follow", root)
	if r.Code != 0 && r.Code != 1 {
		t.Fatalf("--follow over loops: %v", r)
	}
	got := a16fRelKeys(t, root, a16fManifest(t, base, db))
	want := []string{"alink", "d/a", "x1/sub/o", "x2/sub/o", "x3/o"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("--follow indexed %q, want %q\n%s", got, want, r.Err)
	}
	for _, bad := range []string{"zero", "fifo"} {
		for _, k := range got {
			if strings.Contains(k, bad) {
				t.Errorf("%s was indexed", k)
			}
		}
	}
	// without --follow: no links, and the rows found through them are removed
	r = a16fRunOpt(t, a16fOpts{Dir: base, Timeout: 60 * time.Second}, "--db", db, root)
	if r.Code != 0 {
		t.Fatalf("without --follow: %v", r)
	}
	got = a16fRelKeys(t, root, a16fManifest(t, base, db))
	if strings.Join(got, "|") != "d/a" {
		t.Errorf("without --follow the index is %q, want only d/a", got)
	}
	// a PATH on the command line is always followed, a FIFO PATH is refused at once
	db2 := filepath.Join(base, "y.db")
	r = a16fRunOpt(t, a16fOpts{Dir: base, Timeout: 60 * time.Second}, "--db", db2, filepath.Join(root, "x1"), filepath.Join(root, "alink"), filepath.Join(root, "fifo"), filepath.Join(root, "fifolink"), filepath.Join(root, "zero"))
	if r.Code != 1 || !strings.Contains(r.Err, filepath.Join(root, "fifo")) || !strings.Contains(r.Err, filepath.Join(root, "zero")) {
		t.Errorf("FIFO and device PATHs: want exit 1 naming them, got %v", r)
	}
	got = a16fRelKeys(t, root, a16fManifest(t, base, db2))
	if strings.Join(got, "|") != "alink|x1/sub/o" {
		t.Errorf("PATHs that are links: indexed %q", got)
	}
}

// "The database is never indexed, whatever path leads to it (a symbolic
// link, another name for the same folder, a hard link): fxsum knows it and
// SQLite's files beside it by device and inode." Here --db is a symbolic link
// to a database inside the tree.
func TestA16fDatabaseReachedThroughSymlinkIsNeverIndexed(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fWrite(t, filepath.Join(root, "x"), "x\n")
	real := filepath.Join(root, "real.db")
	link := filepath.Join(base, "link.db")
	if r := a16fRun(t, base, "--db", real, root); r.Code != 0 {
		t.Fatal(r)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	r := a16fRun(t, base, "--db", link, root)
	if r.Code != 0 {
		t.Fatal(r)
	}
	got := a16fRelKeys(t, root, a16fManifest(t, base, link))
	if strings.Join(got, "|") != "x" {
		t.Errorf("with --db a link to %s, the index holds %q; want only x", real, got)
	}
}

// The same promise with the database in the tree under several names: a
// hard link, a link followed with --follow, a folder reached twice.
func TestA16fDatabaseHardLinkedAndFollowedIsNeverIndexed(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	a16fWrite(t, filepath.Join(root, "sub", "x"), "x\n")
	db := filepath.Join(root, "sub", "my.db")
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	if err := os.Link(db, filepath.Join(root, "hard.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/my.db", filepath.Join(root, "soft.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub", filepath.Join(root, "again")); err != nil {
		t.Fatal(err)
	}
	for _, dbName := range []string{db, filepath.Join(root, "hard.db"), filepath.Join(root, "again", "my.db")} {
		r := a16fRun(t, base, "--db", dbName, "--follow", root)
		if r.Code != 0 {
			t.Fatalf("--db %s: %v", dbName, r)
		}
		got := a16fRelKeys(t, root, a16fManifest(t, base, dbName))
		if strings.Join(got, "|") != "again/x|sub/x" {
			t.Errorf("--db %s --follow: the index holds %q; want again/x and sub/x only", dbName, got)
		}
	}
}

// "index walks each PATH ..., hashes every regular file": a tree 1100
// folders deep (the whole path about 2,300 bytes, well under PATH_MAX, no
// symbolic link anywhere, no --follow) is indexed like any other; sha256sum
// reads its file without trouble.
func TestA16fDeepTreeWithoutLinksIsIndexed(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	p := root
	for i := 0; i < 1100; i++ {
		p = filepath.Join(p, "d")
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	a16fWrite(t, filepath.Join(p, "leaf"), "leaf\n")
	a16fWrite(t, filepath.Join(root, "top"), "top\n")
	db := filepath.Join(base, "x.db")
	r := a16fRun(t, base, "--db", db, root)
	short := func(s string) string {
		return a16fDeepRe.ReplaceAllStringFunc(s, func(m string) string { return fmt.Sprintf("/d{x%d}", len(m)/2) })
	}
	if r.Code != 0 {
		t.Errorf("a deep tree without links: want exit 0, got exit %d:\n%s", r.Code, short(r.Err))
	}
	m := a16fManifest(t, base, db)
	if len(m) != 2 || m[filepath.Join(p, "leaf")] == "" {
		t.Errorf("the deep file was not indexed; the index holds %d rows: %s", len(m), short(strings.Join(a16fKeys(m), " ")))
	}
}

var a16fDeepRe = regexp.MustCompile(`(/d){3,}`)

// Version-control folders: skipped by default, indexed with --vcs, removed
// again by a run without it; a .git *file* (a submodule's) is not a folder
// and is indexed.
func TestA16fVcsFolders(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	for _, f := range []string{".git/objects/o", ".hg/h", ".svn/s", ".bzr/b", "sub/.git", "x.svn/kept", "keep"} {
		a16fWrite(t, filepath.Join(root, f), f)
	}
	db := filepath.Join(base, "x.db")
	keys := func() string { return strings.Join(a16fRelKeys(t, root, a16fManifest(t, base, db)), "|") }
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	if got := keys(); got != "keep|sub/.git|x.svn/kept" {
		t.Errorf("default: %q", got)
	}
	if r := a16fRun(t, base, "--db", db, "--vcs", root); r.Code != 0 {
		t.Fatal(r)
	}
	if got := keys(); got != ".bzr/b|.git/objects/o|.hg/h|.svn/s|keep|sub/.git|x.svn/kept" {
		t.Errorf("--vcs: %q", got)
	}
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	if got := keys(); got != "keep|sub/.git|x.svn/kept" {
		t.Errorf("after a run without --vcs: %q", got)
	}
}
