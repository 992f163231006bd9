//go:build !linux

package main

import (
	"context"
	"hash"
)

// hashMapped is not available here: files are read.
func hashMapped(context.Context, *rfile, int64, hash.Hash, func(int64)) error {
	return errNotMapped
}
