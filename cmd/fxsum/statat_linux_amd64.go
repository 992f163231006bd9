package main

import (
	"io/fs"
	"strings"
	"syscall"
	"unsafe"
)

// lstatAt is lstat of name in the directory dir, open as dirfd, without
// walking the directory's path again: fstatat(2) on its descriptor.
// scratch holds the NUL-terminated name between calls, so that a call
// allocates nothing.
func lstatAt(dirfd uintptr, _, name string, scratch *[]byte) (st fileState, regular bool, err error) {
	if strings.IndexByte(name, 0) >= 0 {
		return st, false, &fs.PathError{Op: "lstat", Path: name, Err: syscall.EINVAL}
	}
	*scratch = append(append((*scratch)[:0], name...), 0)
	p := &(*scratch)[0]
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
