//go:build !linux

package main

import (
	"context"
	"errors"
	"hash"
)

// mapMin: files are read, never mapped, here.
const mapMin = 1<<63 - 1

var (
	errNotMapped = errors.New("not mapped")
	errTruncated = errors.New("file truncated while mapped")
)

// hashMapped is not available here: files are read.
func hashMapped(context.Context, *rfile, int64, hash.Hash, func(int64)) error {
	return errNotMapped
}
