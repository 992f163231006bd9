package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxpool/fxpool/cmd/fxsum/internal/blake3wide"
)

// TestHashMappedFaults checks that reading the pages of a mapped file past
// its end, once it is truncated, is errTruncated (a SIGBUS recovered),
// whether the fault comes in blake3wide's AVX-512 kernels or in the copy
// of the last 16 KiB into its buffer (runtime.memmove).
func TestHashMappedFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	defer func() { mappedHook = nil }()
	for _, tc := range []struct {
		name        string
		size, short int64
	}{
		{"InTheKernels", 3 * mapSlice, mapSlice + 4096},
		{"InTheLastCopy", mapMin + 16<<10, mapMin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, blake3Input(int(tc.size)), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := openFile(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			mappedHook = func() { truncate(t, path, tc.short) }
			err = hashMapped(context.Background(), f, tc.size, blake3wide.New(), nil)
			if !errors.Is(err, errTruncated) {
				t.Errorf("err = %v, want errTruncated", err)
			}
		})
	}
}
