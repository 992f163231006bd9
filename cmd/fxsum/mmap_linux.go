//go:build linux

package main

import (
	"context"
	"errors"
	"hash"
	"runtime/debug"
	"syscall"
	"unsafe"
)

// mapMin is the size from which a file hashed with blake3wide is mapped
// into memory and hashed from there, rather than read: a read copies every
// byte once more, a fifth of the work of hashing it with AVX-512.
const mapMin = 1 << 20

// mapSlice is how much of a mapped file is hashed between two checks of
// the context and two calls of progress: a few milliseconds' work.
const mapSlice = 8 << 20

var (
	// errNotMapped tells that the file could not be mapped: it is read.
	errNotMapped = errors.New("not mapped")
	// errTruncated tells that a page of the mapped file could not be
	// read: the file shrank while it was hashed.
	errTruncated = errors.New("file truncated while mapped")
)

// mappedHook, if not nil, is called once the file is mapped, before it is
// hashed: tests truncate the file there.
var mappedHook func()

// hashMapped hashes the first size bytes of f, mapped into memory, into h
// with the same calls of progress as reading it would, checking ctx
// between slices. It returns errNotMapped when the file cannot be mapped,
// and errTruncated when a page could not be read because the file shrank
// meanwhile (the kernel sends SIGBUS): runtime/debug.SetPanicOnFault turns
// that fault into a panic, which it recovers. That takes h hashing in this
// goroutine: blake3wide.Hasher starts none.
func hashMapped(ctx context.Context, f *rfile, size int64, h hash.Hash, progress func(int64)) (err error) {
	if int64(int(size)) != size {
		return errNotMapped
	}
	m, err := syscall.Mmap(f.fd, 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return errNotMapped
	}
	defer syscall.Munmap(m)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if fault, ok := r.(interface{ Addr() uintptr }); ok && within(fault.Addr(), m) {
				err = errTruncated
				return
			}
			panic(r)
		}
	}()
	if mappedHook != nil {
		mappedHook()
	}
	for p := m; len(p) > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(len(p), mapSlice)
		h.Write(p[:k])
		p = p[k:]
		if progress != nil {
			progress(int64(k))
		}
	}
	return nil
}

// within reports whether addr is in m.
func within(addr uintptr, m []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
	return addr >= start && addr-start < uintptr(len(m))
}
