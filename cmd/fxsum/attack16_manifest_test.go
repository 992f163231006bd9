package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// a16fOddNames are names every checksum tool must survive.
var a16fOddNames = []string{
	"plain",
	"new\nline",
	"back\\slash",
	"both\\\nmixed\\n",
	"carriage\rreturn",
	"tab\tname",
	"-leading-dash",
	"--",
	" lead and trail ",
	"two  spaces",
	"quote\"and'apostrophe",
	"star*question?[bracket]",
	"percent%_underscore",
	"\xff\xfe-invalid-utf8",
	"caf\u00e9-nfc",
	"cafe\u0301-nfd",
	strings.Repeat("L", 255),
	"ends-with-backslash\\",
}

// a16fOddTree makes the odd names at two depths, including folders with odd
// names, and returns the root.
func a16fOddTree(t *testing.T, base string, skipInvalidUTF8 bool) string {
	t.Helper()
	root := filepath.Join(base, "odd")
	dirs := []string{"", "dir\nwith newline", "dir\\with backslash", "-dashdir"}
	for i, d := range dirs {
		for j, n := range a16fOddNames {
			if skipInvalidUTF8 && strings.Contains(n, "\xff") {
				continue
			}
			if d != "" && j%3 != i%3 && n != "new\nline" && n != "back\\slash" {
				continue
			}
			a16fWrite(t, filepath.Join(root, d, n), "content of "+d+"/"+n+"\n")
		}
	}
	return root
}

// a16fToolLines runs a checksum tool on every file under root and returns its
// output lines as a set.
func a16fToolLines(t *testing.T, tool string, files []string) map[string]bool {
	t.Helper()
	out, err := exec.Command(tool, files...).Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	set := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		set[l] = true
	}
	return set
}

func a16fFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// The manifest of odd names is, line for line, what sha256sum prints for the
// same absolute paths, sorted by path, and passes sha256sum -c, both absolute
// and with --root.
func TestA16fManifestOddNamesMatchSha256sum(t *testing.T) {
	a16fNeed(t, "sha256sum")
	base := a16fDir(t)
	root := a16fOddTree(t, base, false)
	db := filepath.Join(base, "x.db")
	r := a16fRun(t, base, "--db", db, root)
	if r.Code != 0 {
		t.Fatalf("index: %v", r)
	}
	man := a16fRun(t, base, "manifest", "--db", db)
	if man.Code != 0 {
		t.Fatalf("manifest: %v", man)
	}
	files := a16fFiles(t, root)
	want := a16fToolLines(t, "sha256sum", files)
	got := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(man.Out, "\n"), "\n") {
		got[l] = true
	}
	for l := range want {
		if !got[l] {
			t.Errorf("sha256sum prints %q; fxsum manifest does not", l)
		}
	}
	for l := range got {
		if !want[l] {
			t.Errorf("fxsum manifest prints %q; sha256sum does not", l)
		}
	}
	m := a16fManifest(t, base, db)
	a16fSameMap(t, "manifest vs Go's sha256", m, a16fExpected(t, "sha256", root))

	sums := filepath.Join(base, "SHA256SUMS")
	if err := os.WriteFile(sums, []byte(man.Out), 0o644); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("sha256sum", "-c", "--strict", sums)
	c.Dir = "/"
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c of the manifest: %v\n%s", err, a16fClip(string(out)))
	}

	// --root: relative paths, checked from inside the root
	rel := a16fRun(t, base, "manifest", "--db", db, "--root", root)
	if rel.Code != 0 {
		t.Fatalf("manifest --root: %v", rel)
	}
	relm, _ := a16fParse(t, rel.Out)
	if len(relm) != len(files) {
		t.Errorf("manifest --root has %d rows, want %d", len(relm), len(files))
	}
	for p := range relm {
		if strings.HasPrefix(p, "/") {
			t.Errorf("manifest --root printed an absolute path %q", p)
		}
	}
	if err := os.WriteFile(sums, []byte(rel.Out), 0o644); err != nil {
		t.Fatal(err)
	}
	c = exec.Command("sha256sum", "-c", "--strict", sums)
	c.Dir = root
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c of the --root manifest: %v\n%s", err, a16fClip(string(out)))
	}
}

// sha512 and blake3 manifests: what sha512sum and b3sum print, and their -c
// accept them. (b3sum cannot read invalid UTF-8 names at all, so that one
// name is left out of the blake3 tree.)
func TestA16fManifestSha512AndBlake3MatchTools(t *testing.T) {
	a16fNeed(t, "sha512sum")
	a16fNeed(t, "b3sum")
	for _, tc := range []struct{ algo, tool string }{{"sha512", "sha512sum"}, {"blake3", "b3sum"}} {
		t.Run(tc.algo, func(t *testing.T) {
			base := a16fDir(t)
			root := a16fOddTree(t, base, tc.algo == "blake3")
			// one file big enough for the wide/mapped BLAKE3 path
			big := make([]byte, 3<<20+12345)
			for i := range big {
				big[i] = byte(i*7 + i>>11)
			}
			if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(base, "x.db")
			if r := a16fRun(t, base, "--db", db, "--algo", tc.algo, root); r.Code != 0 {
				t.Fatalf("index: %v", r)
			}
			man := a16fRun(t, base, "manifest", "--db", db) // the only algorithm present
			if man.Code != 0 {
				t.Fatalf("manifest: %v", man)
			}
			man2 := a16fRun(t, base, "manifest", "--db", db, "--algo", tc.algo)
			if man2.Out != man.Out {
				t.Errorf("manifest and manifest --algo %s differ", tc.algo)
			}
			want := a16fToolLines(t, tc.tool, a16fFiles(t, root))
			got := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSuffix(man.Out, "\n"), "\n") {
				got[l] = true
			}
			for l := range want {
				if !got[l] {
					t.Errorf("%s prints %q; fxsum manifest does not", tc.tool, l)
				}
			}
			if len(got) != len(want) {
				t.Errorf("fxsum printed %d lines, %s %d", len(got), tc.tool, len(want))
			}
			sums := filepath.Join(base, "SUMS")
			if err := os.WriteFile(sums, []byte(man.Out), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(tc.tool, "-c", sums).CombinedOutput(); err != nil {
				t.Errorf("%s -c: %v\n%s", tc.tool, err, a16fClip(string(out)))
			}
		})
	}
}

// Two algorithms in one index: manifest without --algo is refused, with it
// each prints its own rows.
func TestA16fManifestTwoAlgorithmsNeedsAlgo(t *testing.T) {
	base := a16fDir(t)
	a16fWrite(t, filepath.Join(base, "a", "x"), "x\n")
	a16fWrite(t, filepath.Join(base, "b", "y"), "y\n")
	db := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", db, "--algo", "sha512", "a"); r.Code != 0 {
		t.Fatal(r)
	}
	if r := a16fRun(t, base, "--db", db, "--algo", "blake3", "b"); r.Code != 0 {
		t.Fatal(r)
	}
	r := a16fRun(t, base, "manifest", "--db", db)
	if r.Code != 2 || r.Out != "" || !strings.Contains(r.Err, "--algo") {
		t.Errorf("manifest with two algorithms: want exit 2, nothing on stdout and a hint at --algo; got %v", r)
	}
	m := a16fManifest(t, base, db, "--algo", "sha512")
	if len(m) != 1 || m[filepath.Join(base, "a", "x")] == "" {
		t.Errorf("--algo sha512 rows: %v", m)
	}
	m = a16fManifest(t, base, db, "--algo", "blake3")
	if len(m) != 1 || m[filepath.Join(base, "b", "y")] == "" {
		t.Errorf("--algo blake3 rows: %v", m)
	}
	// reindexing a with sha256 replaces its rows ("whose algorithm differs")
	if r := a16fRun(t, base, "--db", db, "a"); r.Code != 0 {
		t.Fatal(r)
	}
	if m := a16fManifest(t, base, db, "--algo", "sha512"); len(m) != 0 {
		t.Errorf("sha512 rows left after an sha256 run over the same files: %v", m)
	}
	a16fSameMap(t, "sha256 rows", a16fManifest(t, base, db, "--algo", "sha256"), a16fExpected(t, "sha256", filepath.Join(base, "a")))
}

// "sorted by path": byte order of the whole path, not folder then name.
func TestA16fManifestSortedByWholePath(t *testing.T) {
	base := a16fDir(t)
	root := filepath.Join(base, "r")
	for _, p := range []string{"a/x", "a-b/x", "a.b", "a0", "a/b/c", "a b", "A", "a\xff", "a/\n"} {
		a16fWrite(t, filepath.Join(root, p), p)
	}
	db := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", db, root); r.Code != 0 {
		t.Fatal(r)
	}
	r := a16fRun(t, base, "manifest", "--db", db)
	_, order := a16fParse(t, r.Out)
	if !sort.StringsAreSorted(order) || len(order) != 9 {
		t.Errorf("manifest order is not the byte order of the paths: %q", order)
	}
}

// A manifest that cannot be written (disk full) must not exit 0.
func TestA16fManifestWriteErrorIsNotSuccess(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("/dev/full is missing")
	}
	base := a16fDir(t)
	a16fTree(t, filepath.Join(base, "r"), 3, 50)
	db := filepath.Join(base, "x.db")
	if r := a16fRun(t, base, "--db", db, "r"); r.Code != 0 {
		t.Fatal(r)
	}
	r := a16fRunOpt(t, a16fOpts{Dir: base, Stdout: "/dev/full"}, "manifest", "--db", db)
	if r.Code == 0 || !strings.Contains(r.Err, "no space left") {
		t.Errorf("manifest > /dev/full: want a non-zero exit naming the write error, got %v", r)
	}
}
