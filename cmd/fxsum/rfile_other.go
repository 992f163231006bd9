//go:build !linux

package main

import (
	"os"
)

// rfile is a file opened for hashing.
type rfile struct{ *os.File }

// openFile opens path for reading.
func openFile(path string, _ bool) (*rfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &rfile{f}, nil
}

// stat returns the file's state and whether it is a regular file.
func (f *rfile) stat() (fileState, bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileState{}, false, err
	}
	return stateOf(fi), fi.Mode().IsRegular(), nil
}
