package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The problems a real user met with fxsum v1, one test each.

// TestDatabaseThroughAnAliasIsNotIndexed: the database is named through a
// symbolic link to the folder being indexed, or reached through a link
// inside the tree with --follow. It is found by device and inode, not by
// path.
func TestDatabaseThroughAnAliasIsNotIndexed(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs func(real, alias string) []string
	}{
		{"AliasedDB", func(real, alias string) []string { return []string{"--db", filepath.Join(alias, "self.db"), real} }},
		{"AliasedTree", func(real, alias string) []string { return []string{"--db", filepath.Join(real, "self.db"), alias} }},
		{"LinkInsideWithFollow", func(real, _ string) []string {
			return []string{"--follow", "--db", filepath.Join(real, "sub", "self.db"), real}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := genTree(t, 10)
			real := tr.root
			alias := filepath.Join(t.TempDir(), "alias")
			if err := os.Symlink(real, alias); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(real, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(real, "sub"), filepath.Join(real, "link-to-sub")); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			args := tt.giveArgs(real, alias)
			for range 2 {
				mustOK(t, fxsum(t, work, nil, args...))
			}
			db := args[slices.Index(args, "--db")+1]
			m := mustOK(t, fxsum(t, work, nil, "manifest", "--db", db))
			if strings.Contains(m.stdout, "self.db") {
				t.Errorf("the manifest lists the database:\n%s", m.stdout)
			}
			mustOK(t, fxsum(t, work, nil, "verify", "--db", db))
		})
	}
}

// TestSymlinkNamedOnTheCommandLineIsFollowed, as --help says.
func TestSymlinkNamedOnTheCommandLineIsFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("linked"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	r := mustOK(t, fxsum(t, work, nil, link))
	if s := parseSummary(t, r.stderr); s.hashed != 1 || s.errors != 0 {
		t.Errorf("summary %+v, want 1 hashed, no error; stderr:\n%s", s, r.stderr)
	}
	m := mustOK(t, fxsum(t, work, nil, "manifest"))
	if !strings.HasSuffix(m.stdout, "  "+link+"\n") {
		t.Errorf("manifest %q, want the link's path", m.stdout)
	}
}

// runner runs fxsum in work, as the unprivileged user nobody when the
// tests run as root, so that file modes apply to it.
func runner(t *testing.T, work string, reach ...string) func(args ...string) result {
	t.Helper()
	if os.Geteuid() != 0 {
		return func(args ...string) result { t.Helper(); return fxsum(t, work, nil, args...) }
	}
	for _, p := range append([]string{filepath.Dir(fxsumBin), work}, reach...) {
		for d := p; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	return func(args ...string) result {
		t.Helper()
		cmd := command(t, work, nil, args...)
		asNobody(cmd)
		return runCmd(t, cmd)
	}
}

// oneLine asserts that r failed with exit code 2 and one line of stderr
// that holds each of want.
func oneLine(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and one line", r.code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not say %q", r.stderr, w)
		}
	}
}

// TestDatabaseErrorsAreOneLine: a database that cannot be opened is one
// line naming the file and the cause, and exit status 2.
func TestDatabaseErrorsAreOneLine(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	t.Run("MissingFolder", func(t *testing.T) {
		db := filepath.Join(work, "absent", "x.db")
		oneLine(t, fxsum(t, work, nil, "--db", db, tr.root), db, "no such file or directory")
	})
	t.Run("Corrupt", func(t *testing.T) {
		db := filepath.Join(work, "corrupt.db")
		mustOK(t, fxsum(t, work, nil, "--quiet", "--db", db, tr.root))
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(b); i++ {
			b[i] = 0xff
		}
		if err := os.WriteFile(db, b, 0o644); err != nil {
			t.Fatal(err)
		}
		oneLine(t, fxsum(t, work, nil, "--db", db, tr.root), db)
	})
	t.Run("ReadOnlyWorkingDirectory", func(t *testing.T) {
		ro := t.TempDir()
		run := runner(t, ro, tr.root)
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		oneLine(t, run(tr.root), "fxsum.db", "not writable")
	})
}

// TestReadOnlyDatabaseWorksOnceWritable: a run on a read-only database fails
// in one line and leaves nothing behind that fails the run after it is made
// writable again.
func TestReadOnlyDatabaseWorksOnceWritable(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	run := runner(t, work, tr.root)
	mustOK(t, run("--quiet", tr.root))
	db := filepath.Join(work, "fxsum.db")
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr.root, "one"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	oneLine(t, run(tr.root), db, "not writable")
	if err := os.Chmod(db, 0o666); err != nil {
		t.Fatal(err)
	}
	r := mustOK(t, run(tr.root))
	if s := parseSummary(t, r.stderr); s.hashed != 1 {
		t.Errorf("summary %+v, want the changed file hashed", s)
	}
	mustOK(t, run("verify"))
}

// TestBadUsageIsRefused: what makes no sense is refused with a message that
// names it; what was not done makes the exit status non-zero.
func TestBadUsageIsRefused(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	mustOK(t, fxsum(t, work, nil, "--quiet", tr.root))
	tests := []struct {
		name     string
		giveArgs []string
		wantCode int
		wantErr  string
	}{
		{"TooManyWorkers", []string{"--workers", "5000", tr.root}, 2, "--workers 5000: want 1 to 256"},
		{"ManifestRootTypo", []string{"manifest", "--root", filepath.Join(work, "typo")}, 2, "typo: no such file or directory"},
		{"ManifestRootFile", []string{"manifest", "--root", filepath.Join(tr.root, "one")}, 2, "not a folder"},
		{"VerifyNotIndexed", []string{"verify", work}, 2, work + ": not in the index"},
		{"ManifestRehash", []string{"manifest", "--rehash"}, 2, "manifest: --rehash does not apply"},
		{"VerifyAlgo", []string{"verify", "--algo", "sha512"}, 2, "verify: --algo does not apply"},
		{"IndexRoot", []string{"--root", "/", tr.root}, 2, "index: --root does not apply"},
		{"BadExclude", []string{"--exclude", "[", tr.root}, 2, `--exclude "["`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fxsum(t, work, nil, tt.giveArgs...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
}

// TestCommandAfterFlags: "fxsum --db x manifest" is the manifest of x, not
// an index of a folder called manifest.
func TestCommandAfterFlags(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	mustOK(t, fxsum(t, work, nil, "--quiet", "--db", "x.db", tr.root))
	r := mustOK(t, fxsum(t, work, nil, "--db", "x.db", "manifest"))
	if n := strings.Count(r.stdout, "\n"); n != len(tr.files) {
		t.Errorf("manifest has %d lines, want %d:\n%s", n, len(tr.files), r.stdout)
	}
}

// TestBadPathDoesNotStopTheOthers: a PATH that does not exist is reported
// like a problem inside a tree; the other PATHs are indexed; the exit status
// is 1.
func TestBadPathDoesNotStopTheOthers(t *testing.T) {
	tr := genTree(t, 20)
	work := t.TempDir()
	absent := filepath.Join(work, "absent")
	r := fxsum(t, work, nil, absent, tr.root)
	if r.code != 1 || !strings.Contains(r.stderr, absent+": no such file or directory") {
		t.Errorf("exit %d, stderr:\n%s\nwant 1 and the absent path named", r.code, r.stderr)
	}
	checkIndex(t, filepath.Join(work, "fxsum.db"), tr)
}

// TestExclude: version-control folders are skipped unless --vcs is given;
// --exclude skips by name at any depth, or by path under the root; rows of
// files excluded later are removed.
func TestExclude(t *testing.T) {
	tr := genTree(t, 30)
	work := t.TempDir()
	dbFile := filepath.Join(work, "fxsum.db")
	gitFile := filepath.Join(tr.root, ".git", "objects", "ab", "cdef")
	if err := os.MkdirAll(filepath.Dir(gitFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gitFile, []byte("blob"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustOK(t, fxsum(t, work, nil, tr.root))
	checkIndex(t, dbFile, tr)

	mustOK(t, fxsum(t, work, nil, "--vcs", tr.root))
	if got := indexRows(t, dbFile); got[gitFile] == "" {
		t.Errorf("--vcs: %s not indexed", gitFile)
	}

	r = mustOK(t, fxsum(t, work, nil, "--exclude", "deeper dir/", "--exclude", "/d1", "--exclude", "*.txt", tr.root))
	want := map[string]bool{}
	for p := range tr.files {
		rel, _ := filepath.Rel(tr.root, p)
		if !strings.Contains(p, "/deeper dir/") && !strings.HasPrefix(rel, "d1/") && !strings.HasSuffix(p, ".txt") {
			want[p] = true
		}
	}
	got := indexRows(t, dbFile)
	for p := range got {
		if !want[p] {
			t.Errorf("%s indexed, but it is excluded", p)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d rows, want %d", len(got), len(want))
	}
	if s := parseSummary(t, r.stderr); s.removed != len(tr.files)+1-len(want) {
		t.Errorf("removed %d rows, want %d", s.removed, len(tr.files)+1-len(want))
	}
}

// TestManifestOfTheReadmeCommand: the README's "fxsum . && fxsum manifest"
// in a repository lists no .git internals.
func TestManifestOfTheReadmeCommand(t *testing.T) {
	tr := genTree(t, 5)
	if err := os.MkdirAll(filepath.Join(tr.root, ".git", "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr.root, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustOK(t, fxsum(t, tr.root, nil, "."))
	r := mustOK(t, fxsum(t, tr.root, nil, "manifest"))
	if strings.Contains(r.stdout, "/.git/") {
		t.Errorf("manifest lists .git:\n%s", r.stdout)
	}
}

// TestLogIsOffByDefault: fxsum's own messages say what went wrong; the
// pool's and fx's events are shown only when asked for.
func TestLogIsOffByDefault(t *testing.T) {
	tr := genTree(t, 3)
	work := t.TempDir()
	r := mustOK(t, fxsum(t, work, nil, "--quiet", tr.root))
	if r.stderr != "" {
		t.Errorf("stderr %q, want nothing", r.stderr)
	}
	r = mustOK(t, fxsum(t, work, nil, "--quiet", "--log-level", "debug", tr.root))
	if !strings.Contains(r.stderr, "fxsum.workerpool") {
		t.Errorf("--log-level debug: stderr %q, want the pool's events", r.stderr)
	}
}
