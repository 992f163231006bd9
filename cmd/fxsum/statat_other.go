//go:build !(linux && amd64)

package main

import (
	"os"
	"path/filepath"
)

// lstatAt is lstat of name in the directory dir, open as dirfd.
func lstatAt(_ uintptr, dir, name string, _ *[]byte) (st fileState, regular bool, err error) {
	fi, err := os.Lstat(filepath.Join(dir, name))
	if err != nil {
		return st, false, err
	}
	return stateOf(fi), fi.Mode().IsRegular(), nil
}
