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
	st, _, regular, err := f.statID()
	return st, regular, err
}

// statID is stat, and the file's device and inode where they are known.
func (f *rfile) statID() (fileState, fileID, bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileState{}, fileID{}, false, err
	}
	id, _ := idOf(fi)
	return stateOf(fi), id, fi.Mode().IsRegular(), nil
}
