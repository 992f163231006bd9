package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAttack12_DBNamingOddThings: --db naming a FIFO, a socket, a folder,
// a device, a symbolic link loop or to a device, a path through a file, an
// empty path, a too long path or name: index, manifest and verify each give
// one line and exit 2, and never hang; nothing is created.
func TestAttack12_DBNamingOddThings(t *testing.T) {
	tree := a11small(t, 3)
	work := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(syscall.Mkfifo(filepath.Join(work, "fifo"), 0o644))
	l, err := net.Listen("unix", filepath.Join(work, "sock"))
	must(err)
	defer l.Close()
	must(os.Mkdir(filepath.Join(work, "dir"), 0o755))
	must(os.Symlink("loop2", filepath.Join(work, "loop1")))
	must(os.Symlink("loop1", filepath.Join(work, "loop2")))
	must(os.Symlink("/dev/zero", filepath.Join(work, "zero-link")))
	must(os.Symlink("dir", filepath.Join(work, "dir-link")))
	must(os.WriteFile(filepath.Join(work, "file"), []byte("x"), 0o644))
	long := work
	for range 25 {
		long = filepath.Join(long, strings.Repeat("a", 200))
	}
	for _, db := range []string{
		"fifo", "sock", "dir", "dir-link", "/dev/zero", "/dev/null", "/dev/full", "/dev/stdin",
		"loop1", "zero-link", "file/x.db", "", ".", "/",
		filepath.Join(long, "x.db"), strings.Repeat("b", 300) + ".db",
	} {
		for _, cmd := range [][]string{{"--quiet", tree}, {"manifest"}, {"verify"}} {
			before := a12snapshot(t, work)
			args := append([]string{"--db", db}, cmd...)
			r, hung := a12run(t, command(t, work, a11env(), args...), time.Minute)
			name := db
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			if hung {
				t.Errorf("--db %q %s hung", name, cmd[0])
				continue
			}
			a12oneLine(t, "--db "+name+" "+cmd[0], r)
			a12sameFolder(t, "--db "+name+" "+cmd[0], work, before)
		}
	}
}

// TestAttack12_DBPathWithTrailingSlash: `--db out/` names a folder (as
// open(2), ls and every shell do: "out/" is not a file); when there is no
// such folder fxsum creates a regular file "out" and indexes into it, so
// that `mkdir out` fails afterwards. It should be refused with one line,
// exit 2, as a folder is.
func TestAttack12_DBPathWithTrailingSlash(t *testing.T) {
	tree := a11small(t, 3)
	work := t.TempDir()
	r, hung := a12run(t, command(t, work, a11env(), "--db", "out/", "--quiet", tree), time.Minute)
	if hung {
		t.Fatal("hung")
	}
	fi, err := os.Lstat(filepath.Join(work, "out"))
	if r.code != 2 || err == nil {
		desc := "nothing"
		if err == nil {
			desc = "a " + fi.Mode().Type().String() + " file of " + strconv.FormatInt(fi.Size(), 10) + " bytes"
			if fi.Mode().IsRegular() {
				desc = "a regular file of " + strconv.FormatInt(fi.Size(), 10) + " bytes"
			}
		}
		t.Errorf("--db out/ (no such folder): exit %d, and %s named out was created; want exit 2 and one line, nothing created; stderr:\n%s", r.code, desc, r.stderr)
	}
}
