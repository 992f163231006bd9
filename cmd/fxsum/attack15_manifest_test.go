package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// a15fNastyTree makes a tree of names that need care and things that are not
// regular files; it returns the root.
func a15fNastyTree(t *testing.T, withCR bool, withBadUTF8 bool) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	names := []string{
		"plain", "with space", "new\nline", `back\slash`, `both\` + "\n", "\\", "\n",
		"-dash", "--", "-", "tab\there", "trailing space ", " leading", "ünï日本", "*star?", "[br]",
		"a'quote\"", "$(echo x)", "semi;colon", "%25percent_",
		strings.Repeat("L", 255), "dir/" + strings.Repeat("M", 250) + "\n",
		"d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/deep", "dashdir/-x", "bs\\dir/n\nl",
		"empty", "emptydir-sibling/empty2",
	}
	if withCR {
		names = append(names, "cr\rname", "cr\\and\r\n")
	}
	if withBadUTF8 {
		names = append(names, "bad\xffutf8", "bad\xc3(mix\\\n", "dir\xfe/inner")
	}
	for i, n := range names {
		size := (i * 37) % 300
		if strings.Contains(n, "empty") {
			size = 0
		}
		a15fWrite(t, filepath.Join(root, n), a11random(uint64(i+1), size))
	}
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Hard links: two names, one file; both are files of the tree.
	if err := os.Link(filepath.Join(root, "plain"), filepath.Join(root, "hardlink")); err != nil {
		t.Fatal(err)
	}
	// A sparse file: holes at both ends.
	sp, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.WriteAt([]byte("middle"), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := sp.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	// Things that are not regular files: skipped when found by the walk.
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	// Leave the socket file behind once the listener closes.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	for name, target := range map[string]string{
		"selfloop": "selfloop", "dangling": "nowhere", "up": ".", "toplain": "plain",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestAttack15FxsumNastyTreeMatchesCoreutils indexes a tree of nasty names
// (newlines, backslashes, carriage returns, invalid UTF-8, leading dashes,
// 255-byte names, empty, sparse and hard-linked files, a FIFO, a socket,
// symbolic link loops) with sha256 and sha512 and checks that every manifest
// line is byte for byte what sha256sum/sha512sum print for the same files, with
// absolute paths and with --root, and that "-c" passes.
func TestAttack15FxsumNastyTreeMatchesCoreutils(t *testing.T) {
	root := a15fNastyTree(t, true, true)
	work := t.TempDir()
	files := a15fRegular(t, root)
	for _, algo := range []struct{ name, tool string }{{"sha256", "sha256sum"}, {"sha512", "sha512sum"}} {
		t.Run(algo.name, func(t *testing.T) {
			db := filepath.Join(work, algo.name+".db")
			r := a15fOK(t, work, "--db", db, "--algo", algo.name, root)
			if s := parseSummary(t, r.stderr); s.indexed != len(files) || s.errors != 0 {
				t.Errorf("summary %+v, want %d files indexed and no errors\n%s", s, len(files), r.stderr)
			}
			if e := a15fErrLines(r.stderr); len(e) != 0 {
				t.Errorf("a clean tree printed complaints: %q", e)
			}
			// Relative: compare with the tool run in root on the relative names.
			rel := a15fOK(t, work, "--db", db, "manifest", "--root", root)
			want := a15fReference(t, algo.tool, root, files)
			a15fSameLines(t, "manifest --root against "+algo.tool, rel.stdout, want)
			if rel.stdout != want {
				t.Errorf("manifest --root is not byte for byte %s's output in byte order\ngot:\n%q\nwant:\n%q", algo.tool, rel.stdout, want)
			}
			// Absolute.
			abs := a15fOK(t, work, "--db", db, "manifest")
			var absNames []string
			for _, f := range files {
				absNames = append(absNames, filepath.Join(root, f))
			}
			a15fSameLines(t, "manifest against "+algo.tool+" of absolute names", abs.stdout, a15fReference(t, algo.tool, "/", absNames))
			if bad := a15fCheck(t, algo.tool, "/", abs.stdout, len(files)); bad != "" {
				t.Errorf("%s -c of the absolute manifest: %s", algo.tool, bad)
			}
			if bad := a15fCheck(t, algo.tool, root, rel.stdout, len(files)); bad != "" {
				t.Errorf("%s -c of the --root manifest: %s", algo.tool, bad)
			}
			// And verify agrees.
			v := a15fOK(t, work, "--db", db, "verify")
			if v.stdout != "" {
				t.Errorf("verify of an unchanged tree printed %q", v.stdout)
			}
		})
	}
}

// TestAttack15FxsumBlake3ManifestPassesB3sum: the help says a blake3
// manifest passes "b3sum -c". A tree of valid UTF-8 names that need escaping
// (backslash, newline, carriage return) is indexed with --algo blake3; b3sum
// must accept every line, and each digest must be b3sum's.
func TestAttack15FxsumBlake3ManifestPassesB3sum(t *testing.T) {
	root := a15fNastyTree(t, true, false)
	work := t.TempDir()
	files := a15fRegular(t, root)
	db := filepath.Join(work, "b3.db")
	a15fOK(t, work, "--db", db, "--algo", "blake3", root)
	m := a15fOK(t, work, "--db", db, "manifest")
	if bad := a15fCheck(t, "b3sum", "/", m.stdout, len(files)); bad != "" {
		t.Errorf("b3sum -c of fxsum's blake3 manifest: %s\nmanifest lines with \\r:\n%s", bad, a15fLinesWith(m.stdout, `\r`))
	}
	// Each digest is b3sum's (compared by digest and name, whatever the escaping).
	want := map[string]string{}
	for _, f := range files {
		out, errs, err := a15fTool(t, root, "", "b3sum", "--no-names", "--", "./"+f)
		if err != nil {
			t.Fatalf("b3sum %q: %v %s", f, err, errs)
		}
		want[filepath.Join(root, f)] = strings.TrimSpace(out)
	}
	got := a15fDigests(t, m.stdout)
	for p, d := range want {
		if got[p] != d {
			t.Errorf("%q: fxsum %q, b3sum %q", p, got[p], d)
		}
	}
}

func a15fLinesWith(s, sub string) string {
	var out []string
	for _, l := range a15fLines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// a15fDigests parses GNU-style manifest lines into path -> digest,
// undoing the escaping (\\, \n, \r).
func a15fDigests(t *testing.T, manifest string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(manifest, "\n"), "\n") {
		if l == "" {
			continue
		}
		d, p := parseManifestLine(t, l)
		out[p] = d
	}
	return out
}

// TestAttack15FxsumDeepAndLongPaths: folders nested until the absolute
// path is longer than PATH_MAX (4096), with 255-byte names. Every file fxsum
// can name is indexed with sha256sum's digest; what it cannot index is named
// on stderr (exit 1), never dropped in silence; no crash.
func TestAttack15FxsumDeepAndLongPaths(t *testing.T) {
	root := filepath.Join(t.TempDir(), "deep")
	work := t.TempDir()
	seg := strings.Repeat("d", 240)
	dir := root
	var all []string
	for i := 0; i < 24; i++ {
		dir = filepath.Join(dir, fmt.Sprintf("%s%02d", seg, i))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			p := filepath.Join(dir, fmt.Sprintf("f%02d-%s", i, strings.Repeat("x", 200)))
			if err := os.WriteFile(p, []byte(fmt.Sprint(i)), 0o644); err == nil {
				all = append(all, p)
				continue
			}
		}
		// Past PATH_MAX for path-based calls: make the rest relative.
		break
	}
	if len(all) < 15 {
		// Make the rest with *at calls through a chdir'd subprocess.
		t.Logf("only %d levels by path", len(all))
	}
	db := filepath.Join(work, "x.db")
	r := a15f(t, work, "--db", db, root)
	m := a15fOK(t, work, "--db", db, "manifest")
	got := a15fDigests(t, m.stdout)
	var short, long []string
	for _, p := range all {
		if len(p) < 4096 {
			short = append(short, p)
		} else {
			long = append(long, p)
		}
	}
	for _, p := range short {
		if _, ok := got[p]; !ok {
			t.Errorf("file with a %d-byte path is not indexed", len(p))
		}
	}
	missingLong := 0
	for _, p := range long {
		if _, ok := got[p]; !ok {
			missingLong++
		}
	}
	if missingLong > 0 && r.code != 1 {
		t.Errorf("%d files past PATH_MAX not indexed, exit %d, want 1 with them named\n%s", missingLong, r.code, a15fCut(r.stderr))
	}
	if missingLong == 0 && r.code != 0 {
		t.Errorf("every file indexed, exit %d\n%s", r.code, a15fCut(r.stderr))
	}
	if r.code == 1 && len(a15fErrLines(r.stderr)) == 0 {
		t.Errorf("exit 1 with no line naming the culprit")
	}
	for p, d := range got {
		if len(p) >= 4096 {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := a15fSha256(b); d != want {
			t.Errorf("%d-byte path: digest %s, want %s", len(p), d, want)
		}
	}
}

// parseManifestLine splits a GNU-style manifest line into its digest and its
// path, undoing the escaping (\\, \n, \r) of a line that begins with a
// backslash. The adversarial rounds' tests share it.
func parseManifestLine(t *testing.T, line string) (digest, path string) {
	t.Helper()
	esc := strings.HasPrefix(line, `\`)
	if esc {
		line = line[1:]
	}
	i := strings.Index(line, "  ")
	if i < 0 {
		t.Fatalf("bad manifest line %q", line)
	}
	digest, path = line[:i], line[i+2:]
	if !esc {
		return digest, path
	}
	var b strings.Builder
	for j := 0; j < len(path); j++ {
		if path[j] == '\\' && j+1 < len(path) {
			j++
			switch path[j] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case '\\':
				b.WriteByte('\\')
			default:
				t.Fatalf("unknown escape in %q", line)
			}
			continue
		}
		b.WriteByte(path[j])
	}
	return digest, b.String()
}
