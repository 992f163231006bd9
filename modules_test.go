package fxpool_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestModulesInstallAsPublished keeps every module of the repository
// installable as published: no go.mod replaces a module (a replace is
// ignored for users and breaks the install of a module that depends on an
// unpublished placeholder version), and go.work uses every module, so that
// they are developed together instead.
func TestModulesInstallAsPublished(t *testing.T) {
	var modules []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		modules = append(modules, filepath.ToSlash(filepath.Dir(path)))
		for n, line := range readLines(t, path) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "replace" {
				t.Errorf("%s:%d: %q: develop with go.work instead", path, n+1, line)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(modules, ".") || len(modules) < 3 {
		t.Fatalf("found modules %q, want at least the library, fxpoolprom and bench", modules)
	}

	used := workspaceUses(t, "go.work")
	slices.Sort(modules)
	slices.Sort(used)
	if !slices.Equal(used, modules) {
		t.Errorf("go.work uses %q, want every module of the repository: %q", used, modules)
	}
}

// workspaceUses returns the directories of the use directives of a go.work
// file, cleaned ("./bench" becomes "bench").
func workspaceUses(t *testing.T, path string) []string {
	t.Helper()
	var dirs []string
	inBlock := false
	for _, line := range readLines(t, path) {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case inBlock && f[0] == ")":
			inBlock = false
		case inBlock:
			dirs = append(dirs, filepath.ToSlash(filepath.Clean(f[0])))
		case f[0] == "use" && len(f) > 1 && f[1] == "(":
			inBlock = true
		case f[0] == "use" && len(f) > 1:
			dirs = append(dirs, filepath.ToSlash(filepath.Clean(f[1])))
		}
	}
	return dirs
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
