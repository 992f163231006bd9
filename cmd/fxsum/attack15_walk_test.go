package main

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// a15fIndexed is the sorted relative paths of the manifest --root root.
func a15fIndexed(t *testing.T, work, db, root string) []string {
	t.Helper()
	m := a15fOK(t, work, "--db", db, "manifest", "--root", root)
	var out []string
	for p := range a15fDigests(t, m.stdout) {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestAttack15FxsumExcludeAsDocumented checks each documented rule of
// --exclude, and that a later run that excludes more removes the rows.
func TestAttack15FxsumExcludeAsDocumented(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	all := []string{
		"src/a/node_modules/m/x.js", "src/node_modules/y.js", "src/keep.js", "d/node_modules",
		"docs/d.md", "sub/docs/d.md", "build/cache/c", "build/cache2", "sub/build/cache/c",
		"x.tmp", "d/x.tmp", "d/e/x.tmp", "x.txt", "d/x.txt", "d/e/x.txt", "ab.log", "cd.log", "a.b",
	}
	for i, p := range all {
		a15fWrite(t, filepath.Join(root, p), a11random(uint64(i), 10+i))
	}
	without := func(drop ...string) []string {
		var out []string
		for _, p := range all {
			if !slices.Contains(drop, p) {
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out
	}
	cases := []struct {
		pats []string
		want []string
	}{
		// Without a slash: the name at any depth.
		{[]string{"*.tmp"}, without("x.tmp", "d/x.tmp", "d/e/x.tmp")},
		{[]string{"node_modules"}, without("src/a/node_modules/m/x.js", "src/node_modules/y.js", "d/node_modules")},
		// Trailing slash: folders only.
		{[]string{"node_modules/"}, without("src/a/node_modules/m/x.js", "src/node_modules/y.js")},
		// With a slash: relative to the PATH; a leading slash is ignored.
		{[]string{"build/cache"}, without("build/cache/c")},
		{[]string{"/docs"}, without("docs/d.md")},
		{[]string{"/x.txt"}, without("x.txt")},
		// * does not cross a slash; ** is not special.
		{[]string{"d/*.txt"}, without("d/x.txt")},
		{[]string{"**/x.txt"}, without("d/x.txt")},
		// [a-z] classes and ?.
		{[]string{"[a-b]?.log"}, without("ab.log")},
		{[]string{"?.?"}, without("a.b")},
		// Repeatable.
		{[]string{"*.tmp", "*.log", "/sub"}, without("x.tmp", "d/x.tmp", "d/e/x.tmp", "ab.log", "cd.log", "sub/docs/d.md", "sub/build/cache/c")},
	}
	work := t.TempDir()
	for _, c := range cases {
		db := filepath.Join(t.TempDir(), "x.db")
		args := []string{"--db", db}
		for _, p := range c.pats {
			args = append(args, "--exclude", p)
		}
		a15fOK(t, work, append(args, root)...)
		if got := a15fIndexed(t, work, db, root); !slices.Equal(got, c.want) {
			t.Errorf("--exclude %q: indexed %q\nwant %q", c.pats, got, c.want)
		}
		// The same patterns when the PATH is given with a trailing slash
		// and through "..": the relative patterns are still relative to it.
		db2 := filepath.Join(t.TempDir(), "y.db")
		args[1] = db2
		odd := filepath.Join(root, "src", "..") + "/"
		a15fOK(t, work, append(args, odd)...)
		if got := a15fIndexed(t, work, db2, root); !slices.Equal(got, c.want) {
			t.Errorf("--exclude %q with PATH %q: indexed %q\nwant %q", c.pats, odd, got, c.want)
		}
	}
	// A later run that excludes more removes the rows; one that excludes
	// less brings them back.
	db := filepath.Join(work, "later.db")
	a15fOK(t, work, "--db", db, root)
	r := a15fOK(t, work, "--db", db, "--exclude", "d", root)
	if s := parseSummary(t, r.stderr); s.removed != 5 {
		t.Errorf("excluding d removed %d rows, want 5 (%s)", s.removed, r.stderr)
	}
	if got := a15fIndexed(t, work, db, root); slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, "d/") }) {
		t.Errorf("rows under d/ are left after --exclude d: %q", got)
	}
	a15fOK(t, work, "--db", db, root)
	if got := a15fIndexed(t, work, db, root); !slices.Equal(got, without()) {
		t.Errorf("after a run without --exclude: %q", got)
	}
}

// TestAttack15FxsumFollowLoopsAndSpecialTargets: with --follow, symbolic
// links to files and folders outside the tree are indexed under the link's
// path, loops are detected (no hang, each named), a link to a FIFO neither
// hangs nor counts as a file; without --follow none of that is touched and
// the run is clean. A rerun with --follow is incremental.
func TestAttack15FxsumFollowLoopsAndSpecialTargets(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	outside := filepath.Join(base, "outside")
	a15fWrite(t, filepath.Join(root, "real/file"), []byte("real"))
	a15fWrite(t, filepath.Join(outside, "o1"), []byte("outside one"))
	a15fWrite(t, filepath.Join(outside, "deeper/o2"), []byte("outside two"))
	if err := syscall.Mkfifo(filepath.Join(outside, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"tofile":          filepath.Join(outside, "o1"),
		"todir":           outside,
		"tofifo":          filepath.Join(outside, "fifo"),
		"real/up":         "..",
		"real/self":       "self",
		"dangling":        "nowhere",
		"real/sideways":   "../real",
		"todir-relative":  "../outside/deeper",
		"a/b/c/to-top":    "../../..",
		"chain1":          "chain2",
		"chain2":          "tofile",
		"loop-a":          "loop-b",
		"loop-b":          "loop-a",
		"real/todevnull":  "/dev/null",
		"real/to-outside": "../../outside",
	}
	for l, target := range links {
		p := filepath.Join(root, l)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	// Without --follow: only the regular file; nothing to complain about.
	db := filepath.Join(work, "nofollow.db")
	r := a15fOK(t, work, "--db", db, root)
	if e := a15fErrLines(r.stderr); len(e) != 0 {
		t.Errorf("without --follow, complaints about links that are not followed: %q", e)
	}
	if got := a15fIndexed(t, work, db, root); !slices.Equal(got, []string{"real/file"}) {
		t.Errorf("without --follow indexed %q, want only real/file", got)
	}
	// With --follow.
	db = filepath.Join(work, "follow.db")
	r = a15f(t, work, "--db", db, "--follow", root)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("--follow: exit %d\n%s", r.code, r.stderr)
	}
	got := a15fIndexed(t, work, db, root)
	for _, want := range []string{"real/file", "tofile", "todir/o1", "todir/deeper/o2", "todir-relative/o2", "chain1", "chain2"} {
		if !slices.Contains(got, want) {
			t.Errorf("--follow did not index %s; indexed %q", want, got)
		}
	}
	for _, p := range got {
		if strings.Contains(p, "fifo") || strings.Contains(p, "devnull") {
			t.Errorf("--follow indexed %s, not a regular file", p)
		}
	}
	m := a15fOK(t, work, "--db", db, "manifest", "--root", root)
	if bad := a15fCheck(t, "sha256sum", root, m.stdout, len(got)); bad != "" {
		t.Errorf("sha256sum -c of the --follow manifest: %s", bad)
	}
	for _, l := range a15fErrLines(r.stderr) {
		if !strings.HasPrefix(l, "fxsum: "+root) {
			t.Errorf("a complaint that does not name a path of the tree: %q", l)
		}
	}
	// A rerun is incremental and the same.
	r2 := a15f(t, work, "--db", db, "--follow", root)
	if r2.code != r.code {
		t.Errorf("--follow rerun: exit %d, first run %d", r2.code, r.code)
	}
	if s := parseSummary(t, r2.stderr); s.hashed != 0 || s.removed != 0 || s.skipped != len(got) {
		t.Errorf("--follow rerun summary %+v, want all %d skipped", s, len(got))
	}
	// A loop named on the command line is one line and exit 1, no hang.
	r3 := a15f(t, work, "--db", filepath.Join(work, "loop.db"), filepath.Join(root, "loop-a"))
	if r3.code != 1 || !strings.Contains(r3.stderr, "loop-a") {
		t.Errorf("a symlink loop as PATH: exit %d, stderr %q", r3.code, r3.stderr)
	}
	// A FIFO named on the command line does not hang.
	r4 := a15f(t, work, "--db", filepath.Join(work, "fifo.db"), filepath.Join(root, "tofifo"))
	if r4.code != 1 || !strings.Contains(r4.stderr, "tofifo") && !strings.Contains(r4.stderr, "fifo") {
		t.Errorf("a FIFO as PATH: exit %d, stderr %q", r4.code, r4.stderr)
	}
}

// TestAttack15FxsumVerifyPathsAreExact: verify PATH selects the files under
// PATH only: not those of a sibling whose name starts the same, nor those
// a LIKE or GLOB pattern would match (_ % [ ] * ?), and a PATH with no
// indexed file under it is an error.
func TestAttack15FxsumVerifyPathsAreExact(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	pairs := [][2]string{{"a_b", "axb"}, {"p%", "pzz"}, {"b[1]", "b1"}, {"s*", "sx"}, {"q?", "qq"}, {`w\`, `w\\`}, {"dir", "dir2"}, {"dir", "dir-x"}}
	for i, pr := range pairs {
		a15fWrite(t, filepath.Join(root, pr[0], "f"), a11random(uint64(i), 30))
		a15fWrite(t, filepath.Join(root, pr[1], "f"), a11random(uint64(i+100), 30))
	}
	work := t.TempDir()
	db := filepath.Join(work, "x.db")
	a15fOK(t, work, "--db", db, root)
	// Every sibling is damaged; the selected folder is not.
	for _, pr := range pairs {
		a15fWrite(t, filepath.Join(root, pr[1], "f"), []byte("damaged!"))
	}
	for _, pr := range pairs {
		if pr[1] == `w\\` || pr[0] == "dir" {
			continue
		}
		for _, form := range []string{filepath.Join(root, pr[0]), filepath.Join(root, pr[0]) + "/", filepath.Join(root, pr[0], "f")} {
			v := a15f(t, work, "--db", db, "verify", form)
			if v.code != 0 || v.stdout != "" || !strings.Contains(v.stderr, "verified 1 files") {
				t.Errorf("verify %q: exit %d, stdout %q, stderr %q; want only its one file, ok", form, v.code, v.stdout, v.stderr)
			}
		}
	}
	for _, form := range []string{filepath.Join(root, "dir"), filepath.Join(root, `w\`)} {
		v := a15f(t, work, "--db", db, "verify", form)
		if v.code != 0 || !strings.Contains(v.stderr, "verified 1 files") {
			t.Errorf("verify %q: exit %d, stdout %q, stderr %q", form, v.code, v.stdout, v.stderr)
		}
	}
	// Relative PATHs from the tree.
	v := a15f(t, root, "--db", db, "verify", "a_b", "./p%")
	if v.code != 0 || !strings.Contains(v.stderr, "verified 2 files") {
		t.Errorf("verify of relative PATHs: exit %d, stdout %q, stderr %q", v.code, v.stdout, v.stderr)
	}
	// Nothing under it: an error.
	v = a15f(t, work, "--db", db, "verify", filepath.Join(root, "a"))
	if v.code == 0 || !strings.Contains(v.stderr, filepath.Join(root, "a")) {
		t.Errorf("verify of a PATH with nothing indexed: exit %d, stderr %q", v.code, v.stderr)
	}
	// The whole: every damaged sibling named.
	v = a15f(t, work, "--db", db, "verify")
	if v.code != 1 || len(a15fLines(v.stdout)) != len(pairs) {
		t.Errorf("verify of all: exit %d, %d lines, want 1 and %d:\n%s", v.code, len(a15fLines(v.stdout)), len(pairs), v.stdout)
	}
}
