package main

import (
	"io/fs"
	"syscall"
	"unsafe"
)

// lstatAt is lstat of name in the directory dir, open as dirfd, without
// walking the directory's path again: fstatat(2) on its descriptor.
func lstatAt(dirfd uintptr, _, name string) (st fileState, regular bool, err error) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return st, false, err
	}
	var s syscall.Stat_t
	const atSymlinkNofollow = 0x100
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_NEWFSTATAT, dirfd, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&s)), atSymlinkNofollow, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return st, false, &fs.PathError{Op: "lstat", Path: name, Err: e}
		}
		break
	}
	return fileState{size: s.Size, mtime: s.Mtim.Nano()}, s.Mode&syscall.S_IFMT == syscall.S_IFREG, nil
}
