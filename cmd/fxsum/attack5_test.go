package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// a5env is the environment of the runs of these tests: a binary built with
// -race sleeps for a second as it exits unless told not to, and these tests
// run it a dozen times.
func a5env() []string {
	return []string{strings.TrimSpace("GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE"))}
}

// README: "fxsum manifest > SHA256SUMS ... sorted "<hex>  <path>", GNU
// escaping"; "sha256sum -c SHA256SUMS # paths are absolute; use --root DIR
// for relative" — for names with a carriage return, a backslash, a newline,
// leading and trailing spaces, a leading '*', and hard links; --root given
// as "t", "t/", "./t", an absolute path with "..", and a subfolder.
func TestAttack5_NastyNamesAndRootFormsPassSha256sum(t *testing.T) {
	work := t.TempDir()
	tdir := filepath.Join(work, "t")
	names := []string{"a", "back\\slash", "new\nline", "cr\rx", " lead", "trail ", "*star", "sub/x", "sub/ y\\z\n"}
	for i, n := range names {
		p := filepath.Join(tdir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if err := os.Link(filepath.Join(tdir, "a"), filepath.Join(tdir, "sub", "link"+string(rune('A'+i%26))+string(rune('a'+i/26)))); err != nil {
			t.Fatal(err)
		}
	}
	total := len(names) + 50
	mustOK(t, fxsum(t, work, a5env(), "t"))
	abs := mustOK(t, fxsum(t, work, a5env(), "manifest")).stdout
	sha256sumCheck(t, "/", abs, total)
	for _, root := range []string{"t", "t/", "./t", filepath.Join(work, "t", "..", "t")} {
		rel := mustOK(t, fxsum(t, work, a5env(), "manifest", "--root", root)).stdout
		sha256sumCheck(t, tdir, rel, total)
	}
	sub := mustOK(t, fxsum(t, work, a5env(), "manifest", "--root", "t/sub")).stdout
	sha256sumCheck(t, filepath.Join(tdir, "sub"), sub, 52)
	// "DIR must exist": a file or a missing folder is bad usage
	for _, bad := range []string{"t/a", "nope"} {
		if r := fxsum(t, work, a5env(), "manifest", "--root", bad); r.code != 2 {
			t.Errorf("--root %s: exit %d, want 2", bad, r.code)
		}
	}
}

// "Rows of files that a later run excludes are removed from the index, so
// the index is always what the last run selected" — and rows of files a
// later run includes again come back.
func TestAttack5_ExcludesFollowTheLastRun(t *testing.T) {
	work := t.TempDir()
	files := []string{"keep", "x.tmp", "node_modules/m/y", "docs/d", "sub/docs/keep2", "build/cache/e", "a/b"}
	for _, f := range files {
		p := filepath.Join(work, "t", f)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func() string {
		return mustOK(t, fxsum(t, work, a5env(), "manifest", "--root", "t")).stdout
	}
	has := func(m, f string) bool { return strings.Contains(m, "  "+f+"\n") }
	mustOK(t, fxsum(t, work, a5env(), "--exclude", "*.tmp", "--exclude", "node_modules/", "--exclude", "/docs", "--exclude", "build/cache", "--exclude", "b/", "t"))
	m := manifest()
	for f, want := range map[string]bool{"keep": true, "x.tmp": false, "node_modules/m/y": false, "docs/d": false,
		"sub/docs/keep2": true, "build/cache/e": false, "a/b": true} {
		if has(m, f) != want {
			t.Errorf("after excludes: %s present=%v, want %v\n%s", f, has(m, f), want, m)
		}
	}
	mustOK(t, fxsum(t, work, a5env(), "--exclude", "keep*", "t"))
	m = manifest()
	for f, want := range map[string]bool{"keep": false, "sub/docs/keep2": false, "x.tmp": true, "docs/d": true, "node_modules/m/y": true} {
		if has(m, f) != want {
			t.Errorf("after the second run: %s present=%v, want %v\n%s", f, has(m, f), want, m)
		}
	}
}
