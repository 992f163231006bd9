package main

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestSortDirentsIsByteOrder sorts lists above and below the radix sort's
// threshold, of names that share long prefixes, differ only past eight or
// sixteen bytes, are prefixes of one another, and hold bytes that are not
// UTF-8 (which sort as bytes, after every ASCII byte, not as the runes a
// comparison of decoded text would see), against slices.Sort of the names.
func TestSortDirentsIsByteOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "az09._-", "\x01\x7f\x80\xc3\xa9\xe2\x82\xac\xff", "\xef\xbf\xbd\xf0\x9f\x98\x80a"}
	prefixes := []string{"", "x", "photo_2024_", "aaaaaaaa", "aaaaaaaabbbbbbbb", "\xff\xff\xff\xff\xff\xff\xff"}
	for _, n := range []int{0, 1, 2, 63, 64, 65, radixMin - 1, radixMin, 5000} {
		for _, ab := range alphabets {
			seen := make(map[string]bool)
			list := make([]dirent, 0, n)
			for len(list) < n {
				name := prefixes[rng.IntN(len(prefixes))]
				for k := rng.IntN(20); k >= 0; k-- {
					name += string(ab[rng.IntN(len(ab))])
				}
				if seen[name] {
					continue
				}
				seen[name] = true
				list = append(list, dirent{name: name, typ: fs.FileMode(len(name))})
			}
			want := make([]string, len(list))
			for i, e := range list {
				want[i] = e.name
			}
			slices.Sort(want)
			sortDirents(list)
			for i, e := range list {
				if e.name != want[i] {
					t.Fatalf("n=%d alphabet %q: entry %d is %q, want %q", n, ab, i, e.name, want[i])
				}
				if e.typ != fs.FileMode(len(e.name)) {
					t.Fatalf("n=%d: entry %q lost its type", n, e.name)
				}
			}
		}
	}
	// Bytes against runes: "\u00e9" (c3 a9) sorts before "\uff5e" (ef bd
	// 9e), both after "\x7f" and "pad..."; an invalid byte 0xff after all
	// of them.
	list := []dirent{{name: "\xff"}, {name: "\uff5e"}, {name: "\u00e9"}, {name: "\x7f"}}
	for i := range radixMin {
		list = append(list, dirent{name: "pad" + itoa(i)})
	}
	rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	sortDirents(list)
	var got []string
	for _, e := range list[len(list)-4:] {
		got = append(got, e.name)
	}
	if want := []string{"\x7f", "\u00e9", "\uff5e", "\xff"}; !slices.Equal(got, want) || list[0].name != "pad0" {
		t.Errorf("ends of the sorted list %q and %q, want pad0 and %q", list[0].name, got, want)
	}
}

// TestReadDirListsEverything lists a folder of more entries than a system
// call returns, with every kind of entry, and compares it with os.ReadDir:
// the same names and types, the chunks given to the callback adding up to
// the list, in its order.
func TestReadDirListsEverything(t *testing.T) {
	dir := t.TempDir()
	want := make(map[string]fs.FileMode)
	for i := range 3000 {
		name := strings.Repeat("n", i%40) + string(rune('a'+i%26)) + "\xff" + string(rune('0'+i%10)) + filepath.Base(strings.Repeat("q", i/100+1))
		name = name + "-" + string(rune('A'+i%7)) + "-" + itoa(i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = 0
	}
	for _, d := range []string{"sub", ".hidden", "..x"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		want[d] = fs.ModeDir
	}
	if err := os.Symlink("sub", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	want["link"] = fs.ModeSymlink
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err == nil {
		want["fifo"] = fs.ModeNamedPipe
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var chunks []dirent
	calls := 0
	list, err := readDir(f, func(c []dirent) {
		calls++
		if len(c) == 0 || len(c) > listChunk {
			t.Errorf("a chunk of %d entries", len(c))
		}
		chunks = append(chunks, c...)
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 2 {
		t.Errorf("%d calls of each for %d entries, want the listing in chunks", calls, len(list))
	}
	if !slices.Equal(chunks, list) {
		t.Errorf("the chunks (%d entries) are not the list (%d)", len(chunks), len(list))
	}
	got := make(map[string]fs.FileMode)
	for _, e := range list {
		if _, dup := got[e.name]; dup {
			t.Errorf("%q listed twice", e.name)
		}
		got[e.name] = e.typ
	}
	if len(got) != len(want) {
		t.Errorf("listed %d entries, want %d", len(got), len(want))
	}
	for name, typ := range want {
		if g, ok := got[name]; !ok || g != typ {
			t.Errorf("%q: listed %v (%v), want %v", name, g, ok, typ)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
