package main

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCursorReadsEveryRowInOrder writes a folder of more rows than two
// chunks of the cursor hold, with names that need care (bytes that are not
// UTF-8, spaces, digits, names that are prefixes of others), negative and
// large times, rows of another algorithm and racily clean rows, and rows of
// a neighbouring folder, and reads the folder back with the cursor: every
// row once, in byte order, with the state that the lookup gives it.
func TestCursorReadsEveryRowInOrder(t *testing.T) {
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

	const dir = "/d"
	now := time.Now().UnixNano()
	type want struct {
		name  string
		state fileState
	}
	var wants []want
	var w writeLock
	b, err := newBatch(ctx, &w, conn, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := firstRowsPerChunk + maxRowsPerChunk + 500
	for i := range n {
		name := []string{"f", "f ", "\xff", "\xc3\xa9", "1 2", "a\nb", "-"}[i%7] + strconv.Itoa(i)
		r := fileRow{dir: dir, name: name, algo: "sha256", digest: make([]byte, 32),
			state: fileState{size: int64(i * 1000), mtime: []int64{-1, -1 << 62, 1 << 62, 0, 12345}[i%5]}}
		st := r.state
		if st.mtime > now-int64(racyWindow) {
			st.size = -1 // in the future: racily clean
		}
		switch i % 11 {
		case 3:
			r.algo = "blake3"
			st.size = -1
		case 4:
			r.state.mtime = now // indexed just now: racily clean
			r.racyAt = now
			st = fileState{size: -1, mtime: now}
		}
		if err := b.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		wants = append(wants, want{name, st})
		// The neighbours: the same names in folders that sort right
		// before and after dir's.
		for _, other := range []string{"/c", "/d\x01", "/d/e", "/e"} {
			if err := b.Add(ctx, fileRow{dir: other, name: name, algo: "sha256", digest: make([]byte, 32)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(wants, func(a, b want) int { return strings.Compare(a.name, b.name) })

	rr, err := startRowReader(ctx, db, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rr.close(); err != nil {
			t.Error(err)
		}
	}()
	c := rr.open(dir)
	c.load()
	var got []want
	for ; c.ok; c.next() {
		got = append(got, want{c.row.name, c.row.state})
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(wants) {
		t.Fatalf("read %d rows, want %d", len(got), len(wants))
	}
	for i := range got {
		if got[i] != wants[i] {
			t.Fatalf("row %d: %q %+v, want %q %+v", i, got[i].name, got[i].state, wants[i].name, wants[i].state)
		}
	}

	// A cursor closed before it has read everything stops its reader.
	c = rr.open(dir)
	c.load()
	if !c.ok || c.row.name != wants[0].name {
		t.Errorf("first row %q, want %q", c.row.name, wants[0].name)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	// A folder with no rows.
	c = rr.open("/none")
	c.load()
	if c.ok {
		t.Errorf("a folder with no rows has row %q", c.row.name)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseRows(t *testing.T) {
	rows, err := parseRows("b\x00-1 -5\x00a b\x0012 9223372036854775807\x00\xff\x000 -9223372036854775808", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []knownRow{
		{"a b", fileState{12, 1<<63 - 1}},
		{"b", fileState{-1, -5}},
		{"\xff", fileState{0, -1 << 63}},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("parseRows = %+v, want %+v (sorted)", rows, want)
	}
	for _, bad := range []string{"a", "a\x00", "a\x001", "a\x001 x", "\x001 2", "a\x001 2\x00b", "a\x00 2", "a\x001 9223372036854775808", "a\x00--1 2"} {
		if rows, err := parseRows(bad, nil); err == nil {
			t.Errorf("parseRows(%q) = %+v, want an error", bad, rows)
		}
	}
}
