//go:build !unix

package main

import "os"

// fileID identifies a directory for loop detection.
type fileID struct{ dev, ino uint64 }

// idOf is unavailable here: followed directories are bounded by maxDepth.
func idOf(os.FileInfo) (fileID, bool) { return fileID{}, false }

// sysOpenFilesLimit is not known here.
func sysOpenFilesLimit() (int, bool) { return 0, false }

// writable is left to SQLite here.
func writable(string) error { return nil }
