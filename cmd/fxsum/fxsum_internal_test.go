package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"lukechampine.com/blake3"
)

func TestManifestLine(t *testing.T) {
	digest := []byte{0xab, 0x01}
	tests := []struct {
		name     string
		givePath string
		want     string
	}{
		{"Plain", "/a/b c", "ab01  /a/b c\n"},
		{"Backslash", `/a\b`, `\ab01  /a\\b` + "\n"},
		{"Newline", "/a\nb", `\ab01  /a\nb` + "\n"},
		{"CarriageReturn", "/a\rb", `\ab01  /a\rb` + "\n"},
		{"All", "/\\\n\r", `\ab01  /\\\n\r` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := manifestLine(digest, tt.givePath); got != tt.want {
				t.Errorf("manifestLine(%q) = %q, want %q", tt.givePath, got, tt.want)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name      string
		giveArgs  []string
		wantCmd   string
		wantPaths []string
		wantAlgo  string
		wantQuiet bool
	}{
		{"DefaultIndex", []string{"dir"}, "index", []string{"dir"}, "sha256", false},
		{"FlagsAfterPaths", []string{"a", "--quiet", "b", "--algo", "BLAKE3"}, "index", []string{"a", "b"}, "blake3", true},
		{"DashDash", []string{"index", "--", "-x", "--quiet"}, "index", []string{"-x", "--quiet"}, "sha256", false},
		{"Verify", []string{"verify", "--db", "x.db", "p"}, "verify", []string{"p"}, "sha256", false},
		{"Manifest", []string{"manifest", "--root", "r"}, "manifest", nil, "sha256", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.giveArgs, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if o.cmd != tt.wantCmd || strings.Join(o.paths, "|") != strings.Join(tt.wantPaths, "|") || o.algo != tt.wantAlgo || o.quiet != tt.wantQuiet {
				t.Errorf("got cmd %q paths %q algo %q quiet %v", o.cmd, o.paths, o.algo, o.quiet)
			}
		})
	}
}

func TestAbsRootsDropsNested(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	sibling := dir + "-sibling"
	for _, d := range []string{sub, sibling} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.RemoveAll(sibling) })
	var bad []string
	got, err := absRoots([]string{sub, dir, sibling, dir, filepath.Join(dir, "absent")}, func(p string, err error) {
		if errors.Is(err, os.ErrNotExist) {
			bad = append(bad, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{dir, sibling}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("absRoots = %q, want %q", got, want)
	}
	if want := filepath.Join(dir, "absent"); len(bad) != 1 || bad[0] != want {
		t.Errorf("absRoots reported %q, want %q", bad, want)
	}
}

// TestHashFileDetectsChange appends to the file while it is being read: the
// first time only, then on every read.
func TestHashFileDetectsChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	content := bytes.Repeat([]byte("0123456789abcdef"), readBufSize/4) // four reads
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	appendByte := func() {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.Write([]byte{'!'}); err != nil {
			t.Error(err)
		}
	}
	buf, hs := newReadBuf(), newHashers()

	t.Run("ChangesOnceThenRehashed", func(t *testing.T) {
		changed := false
		res, err := hashFile(context.Background(), path, "sha256", false, buf, hs, func(int64) {
			if !changed {
				changed = true
				appendByte()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(append(content, '!'))
		if !bytes.Equal(res.digest, want[:]) || res.state.size != int64(len(content)+1) {
			t.Errorf("digest of the second read not recorded: size %d", res.state.size)
		}
	})
	t.Run("KeepsChangingThenReported", func(t *testing.T) {
		_, err := hashFile(context.Background(), path, "sha256", false, buf, hs, func(int64) { appendByte() })
		if !errors.Is(err, errChanged) {
			t.Errorf("err = %v, want errChanged", err)
		}
	})
}

func TestCheckDBRefusesWithoutWriting(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("SQLite format 3\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ue *usageError
	if _, err := checkDB(short, true); !errors.As(err, &ue) {
		t.Errorf("checkDB(truncated header) = %v, want a usage error", err)
	}
	isNew, err := checkDB(filepath.Join(dir, "absent"), true)
	if err != nil || !isNew {
		t.Errorf("checkDB(absent, create) = %v, %v; want new", isNew, err)
	}
}

// TestHashFileReadsToTheEndWhenTheSizeIsZero: procfs, sysfs and some FUSE
// and network file systems report a size of 0 for files that have content.
func TestHashFileReadsToTheEndWhenTheSizeIsZero(t *testing.T) {
	const path = "/proc/self/cmdline"
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != 0 {
		t.Skipf("no procfs file of size 0 here: %v", err)
	}
	content, err := os.ReadFile(path)
	if err != nil || len(content) == 0 {
		t.Fatalf("read %s: %d bytes, %v", path, len(content), err)
	}
	res, err := hashFile(context.Background(), path, "sha256", false, newReadBuf(), newHashers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(content); !bytes.Equal(res.digest, want[:]) {
		t.Errorf("digest %x, want %x, the digest of its %d bytes", res.digest, want, len(content))
	}
}

// TestHashFileSizes: files of sizes around the read buffer's, which end
// with a short read, a full one or an exact fit.
func TestHashFileSizes(t *testing.T) {
	dir := t.TempDir()
	buf, hs := newReadBuf(), newHashers()
	for _, size := range []int{0, 1, readBufSize - 1, readBufSize, readBufSize + 1, 3 * readBufSize} {
		path := filepath.Join(dir, "f")
		content := bytes.Repeat([]byte{byte(size)}, size)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := hashFile(context.Background(), path, "sha256", false, buf, hs, nil)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if want := sha256.Sum256(content); !bytes.Equal(res.digest, want[:]) || res.state.size != int64(size) {
			t.Errorf("size %d: digest %x size %d, want %x", size, res.digest, res.state.size, want)
		}
	}
}

// TestCreateDBTwice: two first runs on a database that does not exist yet
// both find it missing and both create it; the second must find the first
// one's schema and use it.
func TestCreateDBTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	for i := range 2 {
		if err := createDB(context.Background(), path); err != nil {
			t.Fatalf("createDB, time %d: %v", i+1, err)
		}
	}
	db, err := openDB(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBatchFullDiskIsOneError: when the disk fills up, SQLite rolls the
// transaction back itself; the batch's error is the full disk alone, without
// a second one from its own rollback.
func TestBatchFullDiskIsOneError(t *testing.T) {
	ctx := context.Background()
	db, err := openDB(ctx, filepath.Join(t.TempDir(), "x.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA max_page_count = 8"); err != nil {
		t.Fatal(err)
	}
	var w writeLock
	b, err := newBatch(ctx, &w, conn, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 999 {
		if err := b.Add(ctx, fileRow{dir: "/d", name: strings.Repeat("n", 200) + strconv.Itoa(i), algo: "sha256", digest: make([]byte, 32)}); err != nil {
			t.Fatal(err)
		}
	}
	err = b.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("Close = %v, want a full database", err)
	}
	if strings.Contains(err.Error(), "rollback") {
		t.Errorf("Close = %v, want no error from the rollback", err)
	}
}

// TestCountersTotal: once the walk is complete, its count is the total,
// whatever the counting walk, which may still be running, has added.
func TestCountersTotal(t *testing.T) {
	var c counters
	c.seen.Store(3)
	c.counted.Store(2)
	if n, _ := c.total(); n != 3 {
		t.Errorf("walk under way: total %d, want 3", n)
	}
	c.found.Store(3)
	c.exact.Store(true)
	c.counted.Store(6)
	if n, _ := c.total(); n != 3 {
		t.Errorf("walk complete: total %d, want 3", n)
	}
}

// TestBLAKE3 compares fxsum's BLAKE3, with its fast path for small inputs,
// with the library's, across the sizes where the paths and the tree change,
// written at once and in pieces.
func TestBLAKE3(t *testing.T) {
	data := make([]byte, 3*smallBLAKE3+7)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	h := newBLAKE3()
	for _, size := range []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3000, 8191, 8192, 8193, smallBLAKE3 - 1, smallBLAKE3, smallBLAKE3 + 1, 2*smallBLAKE3 + 5, len(data)} {
		want := blake3.Sum256(data[:size])
		for _, step := range []int{size + 1, 1000, 4096} {
			h.Reset()
			for i := 0; i < size; i += step {
				h.Write(data[i:min(size, i+step)])
			}
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Errorf("size %d, written %d at a time: %x, want %x", size, step, got, want)
			}
		}
	}
}
