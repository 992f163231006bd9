//go:build !unix

package main

import "os"

// openFile opens path for reading.
func openFile(path string, _ bool) (*os.File, error) { return os.Open(path) }

// fileID identifies a directory for loop detection.
type fileID struct{ dev, ino uint64 }

// idOf is unavailable here: loop detection falls back to the path depth limit.
func idOf(os.FileInfo) (fileID, bool) { return fileID{}, false }
