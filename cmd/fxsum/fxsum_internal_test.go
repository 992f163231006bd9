package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
			if got := manifestLine(digest, tt.givePath, "sha256"); got != tt.want {
				t.Errorf("manifestLine(%q) = %q, want %q", tt.givePath, got, tt.want)
			}
		})
	}
	// b3sum escapes the backslash and the newline only, and "b3sum -c"
	// refuses \r: a carriage return stays as it is in a BLAKE3 line.
	for give, want := range map[string]string{
		"/a\rb":    "ab01  /a\rb\n",
		"/a\\b\r":  `\ab01  /a\\b` + "\r\n",
		"/a\nb\r":  `\ab01  /a\nb` + "\r\n",
		"/plain c": "ab01  /plain c\n",
	} {
		if got := manifestLine(digest, give, "blake3"); got != want {
			t.Errorf("manifestLine(%q, blake3) = %q, want %q", give, got, want)
		}
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

// Past the limit of open files, every worker's connection failed with
// SQLite's "unable to open database file", a line each, and nothing named
// the limit: --workers beyond it is one line naming it; the default is
// cut down to what it allows.
func TestWorkersWithinOpenFiles(t *testing.T) {
	limit := 64
	openFilesLimit = func() (int, bool) { return limit, true }
	t.Cleanup(func() { openFilesLimit = sysOpenFilesLimit })
	_, err := parseArgs([]string{"--workers", "256", "dir"}, io.Discard)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ulimit -n") || !strings.Contains(err.Error(), "at most 13 workers") {
		t.Errorf("--workers 256 with 64 open files: %v, want a usage error naming the limit and 13 workers", err)
	}
	if o, err := parseArgs([]string{"--workers", "13", "dir"}, io.Discard); err != nil || o.workers != 13 {
		t.Errorf("--workers 13 with 64 open files: %v", err)
	}
	if o, err := parseArgs([]string{"verify", "--workers", "40"}, io.Discard); err != nil || o.workers != 40 {
		t.Errorf("verify --workers 40 with 64 open files (one each): %v", err)
	}
	// With --queue, the hashing workers open one file each; the two
	// writers' connections count once, not once a worker.
	if o, err := parseArgs([]string{"--queue", "embedded", "--workers", "30", "dir"}, io.Discard); err != nil || o.queueWorkers != 30 {
		t.Errorf("index --queue --workers 30 with 64 open files (24 + 6 + 30 needed): %v", err)
	}
	limit = 24 + 3 // room for one index worker
	o, err := parseArgs([]string{"dir"}, io.Discard)
	if err != nil || o.workers != 1 {
		t.Errorf("default workers with room for one: %+v, %v; want 1 worker", o, err)
	}
}

func TestPrintErrorKeepsItShort(t *testing.T) {
	var errs []error
	for i := range 10 {
		errs = append(errs, fmt.Errorf("worker %d: open connection: unable to open database file", i))
	}
	var b strings.Builder
	printError(&b, errors.Join(errs...))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != maxErrorLines+1 || !strings.HasPrefix(lines[0], "fxsum: worker 0:") || lines[maxErrorLines] != "(and 6 more lines like these)" {
		t.Errorf("printed %q", lines)
	}
	b.Reset()
	printError(&b, errors.New("one line"))
	if b.String() != "fxsum: one line\n" {
		t.Errorf("printed %q", b.String())
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
	testGrowsWhileHashed(t, path, content, "sha256", func(b []byte) []byte { d := sha256.Sum256(b); return d[:] })
}

// testGrowsWhileHashed appends a byte to the file at path, which holds
// content, while hashFile hashes it with algo (sum is its digest): at the
// first call of progress only, after which it is hashed once more, to the
// digest of content and the byte; then at every call, after which it is
// errChanged.
func testGrowsWhileHashed(t *testing.T, path string, content []byte, algo string, sum func([]byte) []byte) {
	t.Helper()
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

	t.Run("OnceThenRehashed", func(t *testing.T) {
		changed := false
		res, err := hashFile(context.Background(), path, algo, false, nil, buf, hs, func(int64) {
			if !changed {
				changed = true
				appendByte()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.digest, sum(append(content, '!'))) || res.state.size != int64(len(content)+1) {
			t.Errorf("digest of the second hashing not recorded: size %d", res.state.size)
		}
	})
	t.Run("KeepsGrowingThenReported", func(t *testing.T) {
		_, err := hashFile(context.Background(), path, algo, false, nil, buf, hs, func(int64) { appendByte() })
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
	res, err := hashFile(context.Background(), path, "sha256", false, nil, newReadBuf(), newHashers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(content); !bytes.Equal(res.digest, want[:]) {
		t.Errorf("digest %x, want %x, the digest of its %d bytes", res.digest, want, len(content))
	}
}

// A sysfs file reports a size of a page and has fewer bytes: it is hashed
// as read, not reported as changed while being hashed.
func TestHashFileShorterThanItsSize(t *testing.T) {
	var path string
	var content []byte
	for _, p := range []string{"/sys/kernel/mm/transparent_hugepage/enabled", "/sys/class/net/lo/address", "/sys/devices/system/cpu/online"} {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 && int64(len(b)) < fi.Size() {
			path, content = p, b
			break
		}
	}
	if path == "" {
		t.Skip("no sysfs file here whose content is shorter than its size")
	}
	res, err := hashFile(context.Background(), path, "sha256", false, nil, newReadBuf(), newHashers(), nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if want := sha256.Sum256(content); !bytes.Equal(res.digest, want[:]) {
		t.Errorf("%s: digest %x, want %x, the digest of its %d bytes", path, res.digest, want, len(content))
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
		res, err := hashFile(context.Background(), path, "sha256", false, nil, buf, hs, nil)
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

// A new index stats no file in its walk, so the walk's bytes leave out
// every new file: once the walk was complete, the bar's total fell to one
// byte below what was read, and the bar drew itself that many times the
// terminal's width (a run of 25,000 new files on a terminal grew to 13 GB).
func TestProgressNeverPastItsTotal(t *testing.T) {
	var c counters
	var out bytes.Buffer
	p := &progress{bar: newBar(&out)}
	// The walks are under way: the counting walk has added up part of the
	// tree, the workers have read 30 KiB of new files. (Small figures: the
	// bar drawn before the fix is then megabytes, not gigabytes.)
	c.counted.Store(10_000)
	c.countedBytes.Store(40 << 10)
	c.seen.Store(20_000)
	c.hashed.Store(9_000)
	c.readBytes.Store(30 << 10)
	p.update(&c)
	// The walk is complete: 25,000 files, all new, none statted by it.
	c.found.Store(25_000)
	c.exact.Store(true)
	for range 3 {
		c.readBytes.Add(1 << 10)
		p.update(&c)
	}
	if s := p.bar.State(); s.CurrentPercent > 1 || s.Max < c.readBytes.Load() {
		t.Errorf("bar at %.0f%% of %d bytes, with %d read", 100*s.CurrentPercent, s.Max, c.readBytes.Load())
	}
	if files, n := c.total(); files != 25_000 || n != 40<<10 {
		t.Errorf("total = %d files, %d bytes; want 25000 files and the counting walk's 40 KiB", files, n)
	}
	for line := range strings.SplitSeq(strings.ReplaceAll(out.String(), "\r", "\n"), "\n") {
		if len(line) > 1000 {
			t.Fatalf("the bar drew a line of %d bytes: %.100q...", len(line), line)
		}
	}
}

// blake3Vectors are the BLAKE3-256 digests of the first size bytes of
// blake3Input, computed with b3sum 1.2.0 (the reference implementation, in
// Rust): around the block (64 bytes) and chunk (1 KiB) boundaries, the
// SIMD widths of the chunk tree, and beyond one read buffer.
var blake3Vectors = []struct {
	size   int
	digest string
}{
	{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
	{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
	{63, "05ea11bb8b03801cb11b92b2272a09a1091445ab2be91f5012845aa745899cce"},
	{64, "91879ebe9cbc1b03e7d14eeb052ace3b17c666416098b545f2b070c8624bc94a"},
	{65, "57a299ea7fe87704589bdcc5c5f1dc35409bbc9c333af038ea9424770cfea65d"},
	{1023, "4eeafa1cdd8e39eb4610d8c947db0c757308318357eea20970c42ead72fa913e"},
	{1024, "bde35b561408a376a2ecf7812d4822e50ada3caecfbe85a2fd92a6b341cce8b9"},
	{1025, "d2cd402063940be6c8726a1e785e11e09f92d46f6552eeec30ff9beb426e38d0"},
	{2048, "20914c30baab014d8bb332c0734a4841eedc9ec698cd39257fc9ade9a285bc2a"},
	{3000, "0d13fde276c0e57a420ced7e4cfdb84ab8f32d3065454531fc0919af42b3d6d7"},
	{8191, "3180ba9d054ec9f63be929a9235c765f4931f9333ee89fceba7256bae7b8b4cd"},
	{8192, "c2895dc91df62ed45c75679d9e28836dee6fc56fe9105680ae57876613eb09ad"},
	{8193, "477377ee9050d98bd258a0dfe9da9555f8d06caf66fe9131d77c9e5d43d6b91e"},
	{16383, "6e5bd56b458d671b33efb9e2cb091aba1f50a8598d2d77a7c915579add4fd917"},
	{16384, "eecae8f2d3e675080588a1a317b86f9a0e8541186df711df88a253573e22550a"},
	{16385, "8f8dcc08a19549b3a245639aea337681ee8ae8ca5955d05b5baeceaf6e7b4aa5"},
	{32773, "c01a6e972cca48842cc6786741bea0ef34ea1c724437a328d62c43f7fe8b4c97"},
	{65536, "d9daf2a17da1f119ed2cfa19592c742db80f6a5090c66bd22ab02330acd7be01"},
	{100000, "b69cf6296505efce986acbd8141c4f8c29e43e327d5ac87de505ac35be69a3ad"},
	{1048576, "277646317c00df1f8ab3ed2f43808766c1c57870038d524cde4ce8824fc4c43a"},
	{1048577, "12b93ce39a126e738dbaca4f6de2b90de153f1de80e5867e96bbe544afec077f"},
}

func blake3Input(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	return data
}

// TestBLAKE3 checks fxsum's BLAKE3 against digests of the reference
// implementation, written at once and in pieces.
func TestBLAKE3(t *testing.T) {
	data := blake3Input(blake3Vectors[len(blake3Vectors)-1].size)
	h := newBLAKE3()
	for _, v := range blake3Vectors {
		for _, step := range []int{v.size + 1, 1000, 4096} {
			h.Reset()
			for i := 0; i < v.size; i += step {
				h.Write(data[i:min(v.size, i+step)])
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != v.digest {
				t.Errorf("size %d, written %d at a time: %s, want %s", v.size, step, got, v.digest)
			}
		}
	}
}

// TestProgressEndsOnItsLastFrame: files hashed while their folder is
// listed are done before the walks find them, and the bytes done can reach
// the total found so far long before the end. The bar took that as its
// end: it drew "256/181 files 100%", and then nothing new, so that its last
// frame said every file was done and 1% of the bytes.
func TestProgressEndsOnItsLastFrame(t *testing.T) {
	var c counters
	var out bytes.Buffer
	p := &progress{bar: newBar(&out)}
	c.counted.Store(181)
	c.countedBytes.Store(100 << 10)
	c.hashed.Store(256)
	c.readBytes.Store(100 << 10)
	p.update(&c)
	if strings.Contains(out.String(), "256/181") {
		t.Errorf("the bar drew more files done than found: %q", out.String())
	}
	if p.bar.IsFinished() {
		t.Errorf("the bar ended with the run under way: %q", out.String())
	}
	// The run ends: 10,000 files of 10 MiB, all hashed.
	c.counted.Store(10_000)
	c.countedBytes.Store(10 << 20)
	c.seen.Store(10_000)
	c.hashed.Store(10_000)
	c.readBytes.Store(10 << 20)
	c.found.Store(10_000)
	c.exact.Store(true)
	time.Sleep(150 * time.Millisecond) // past the bar's throttle: the last frame is drawn
	p.update(&c)
	frames := strings.Split(out.String(), "\r")
	last := frames[len(frames)-1]
	if !strings.Contains(last, "10000/10000 files") || !strings.Contains(last, "100%") {
		t.Errorf("last frame %q, want every file and 100%%", last)
	}
}

// TestShellClasses: the shell's negated class, [!...], is path.Match's
// [^...]; an escaped bracket, and a '!' that does not open a class, stay.
func TestShellClasses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"[!a]*", "[^a]*"},
		{"x[!a-c]y[!d]", "x[^a-c]y[^d]"},
		{`\[!a]`, `\[!a]`},
		{"!a", "!a"},
		{"[a!]", "[a!]"},
		{"[^a]", "[^a]"},
		{`[\]!]x[!b]`, `[\]!]x[^b]`},
	} {
		if got := shellClasses(c.in); got != c.want {
			t.Errorf("shellClasses(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
