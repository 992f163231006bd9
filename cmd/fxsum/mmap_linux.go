//go:build linux

package main

import (
	"context"
	"fmt"
	"hash"
	"io/fs"
	"runtime/debug"
	"syscall"
	"unsafe"
)

// hashMapped hashes the first size bytes of f into h, a window at a time
// mapped into memory, with the calls of progress that reading it would
// make, checking ctx between windows.
//
// A page that cannot be read (past the end of a file that shrank, or one
// the kernel cannot read) is a SIGBUS: runtime/debug.SetPanicOnFault turns
// it into a panic, which hashWindow recovers. The file shrank: errTruncated;
// it did not: errNotMapped, to read it instead, which reports the error as
// it is. That takes h hashing in this goroutine: blake3wide.Hasher starts
// none. A file that cannot be mapped at all is errNotMapped too.
func hashMapped(ctx context.Context, f *rfile, size int64, h hash.Hash, progress func(int64)) error {
	if !mappable(f) || sparse(f, size) {
		return errNotMapped
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for off := int64(0); off < size; off += mapWindow {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(size-off, mapWindow)
		if err := hashWindow(f, off, int(n), h); err != nil {
			return err
		}
		if progress != nil {
			progress(n)
		}
	}
	return nil
}

// mappableFS are the file systems whose files are mapped (their magic
// numbers, linux/magic.h): those whose regular files are data in the page
// cache, of a disk or of memory, which a mapping reads as read does.
var mappableFS = map[uint32]bool{
	0xEF53:     true, // ext2, ext3, ext4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x01021994: true, // tmpfs
	0x794C7630: true, // overlayfs
	0xF2F52010: true, // f2fs
	0x2FC12FC1: true, // zfs
	0xCA451A4E: true, // bcachefs
	0x73717368: true, // squashfs
	0xE0F5E1E2: true, // erofs
}

// mappable reports whether f is on one of mappableFS. Other files are read:
// a regular file of sysfs can be a device's registers (a PCI device's
// resourceN, the size of its memory), which a mapping would read as memory;
// network and FUSE file systems gain little and fail in more ways.
func mappable(f *rfile) bool {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(f.fd, &st); err != nil {
		return false
	}
	return mappableFS[uint32(st.Type)]
}

// sparse reports whether f has fewer bytes on disk than size: holes (or
// compression). A hole is read as zeros at the speed of a copy, but each
// of its pages mapped is a page fault: a 2 GiB file of holes took 11 s
// mapped, 8.7 of them in the kernel, against 0.9 s for b3sum. Such files
// are read.
func sparse(f *rfile, size int64) bool {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return true
	}
	return st.Blocks*512 < size
}

// mmap is syscall.Mmap; tests see through it what is mapped.
var mmap = syscall.Mmap

// hashWindow hashes the n bytes of f from off, mapped, into h.
func hashWindow(f *rfile, off int64, n int, h hash.Hash) (err error) {
	m, err := mmap(f.fd, off, n, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		if off == 0 {
			return errNotMapped
		}
		return &fs.PathError{Op: "mmap", Path: f.path, Err: err}
	}
	defer syscall.Munmap(m)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fault, ok := r.(interface{ Addr() uintptr })
		start := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
		if !ok || fault.Addr() < start || fault.Addr()-start >= uintptr(n) {
			panic(r) // not a page of this window: a bug
		}
		err = faulted(f, off+int64(fault.Addr()-start))
	}()
	if mappedHook != nil && off == 0 {
		mappedHook()
	}
	h.Write(m)
	return nil
}

// faulted is the error of a page at offset at of f that could not be read.
func faulted(f *rfile, at int64) error {
	if faultHook != nil {
		faultHook()
	}
	st, _, err := f.stat()
	switch {
	case err != nil:
		return fmt.Errorf("a page of the mapped file could not be read: %w", err)
	case st.size <= at:
		return errTruncated
	default:
		return errNotMapped
	}
}
