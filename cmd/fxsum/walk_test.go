package main

import (
	"path/filepath"
	"testing"
)

// TestJoinName: joinName is filepath.Join for a clean folder and a name in it.
func TestJoinName(t *testing.T) {
	for _, dir := range []string{string(filepath.Separator), filepath.Join(string(filepath.Separator), "a"), filepath.Join(string(filepath.Separator), "a b", "c")} {
		for _, name := range []string{"x", "x y", "\xff", "-", "...", ".x"} {
			if got, want := joinName(dir, name), filepath.Join(dir, name); got != want {
				t.Errorf("joinName(%q, %q) = %q, want %q", dir, name, got, want)
			}
		}
	}
}
