package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// visitor receives what a walker finds. A non-nil error from a visitor
// method stops the walk and is returned by walk.
type visitor interface {
	// enterDir is called for each directory that could be opened, before
	// its entries.
	enterDir(ctx context.Context, dir string) error
	// needState reports whether file needs the size and modification time
	// of the file named name in the directory last entered. A file whose
	// state is not needed costs no system call in the walk.
	needState(name string) bool
	// file is called for each regular file name in dir (or, with follow,
	// each symbolic link to one) with its lstat (stat) state if needState
	// asked for it, nil otherwise; link is set when it is a symbolic link,
	// to be followed when the file is opened.
	file(ctx context.Context, dir, name string, st *fileState, link bool) error
	// leaveDir is called after the entries of dir; complete is false if the
	// listing was cut short or dir is the parent of a file named as a root.
	leaveDir(ctx context.Context, dir string, complete bool) error
	// problem reports a path that could not be read. A directory that
	// could not be listed is reported with dir set.
	problem(path string, isDir bool, err error)
}

// aheadVisitor is a visitor that prepares for a directory before the walker
// enters it.
type aheadVisitor interface {
	// enterNext tells that dir is most likely the next directory that
	// the walker enters, after the files of the directory last entered.
	enterNext(ctx context.Context, dir string)
}

// errSymlinkLoop reports a followed symbolic link that leads back to one of
// its own ancestors.
var errSymlinkLoop = errors.New("symbolic link loop")

// maxDepth bounds the nesting of followed directories where loops cannot
// be detected by device and inode.
const maxDepth = 1024

// walker walks trees depth first. It lists each directory whole and visits
// its entries sorted by name, so that the index's rows, keyed by directory
// and name, are written in key order; it keeps no more than one directory
// open at a time.
type walker struct {
	follow  bool
	exclude *excluder
	// self is the index's own database, never visited.
	self *selfFiles
	v    visitor
}

// selfFiles are the database and SQLite's files beside it, known by
// device and inode rather than by path, so that no other path (a symbolic
// link, a bind mount, a name with "..") leads the walk into them: they
// change while they would be hashed.
type selfFiles struct {
	entries map[selfEntry]bool // their folders and names
	ids     map[fileID]bool    // those that exist when the walk starts
}

// selfEntry is a file by its folder and name.
type selfEntry struct {
	dir  fileID
	name string
}

// newSelfFiles identifies the database at db, an absolute path, and the
// files SQLite keeps beside it. Call it once the database is open, when its
// -wal and -shm files exist. A db that is a symbolic link is also known by
// the path it leads to, beside which SQLite keeps those files.
func newSelfFiles(db string) *selfFiles {
	s := &selfFiles{entries: make(map[selfEntry]bool), ids: make(map[fileID]bool)}
	paths := []string{db}
	if real, err := filepath.EvalSymlinks(db); err == nil && real != db {
		paths = append(paths, real)
	}
	for _, p := range paths {
		var dir fileID
		if fi, err := os.Stat(filepath.Dir(p)); err == nil {
			dir, _ = idOf(fi)
		}
		base := filepath.Base(p)
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			if dir != (fileID{}) {
				s.entries[selfEntry{dir, base + suffix}] = true
			}
			if fi, err := os.Stat(p + suffix); err == nil {
				if id, ok := idOf(fi); ok {
					s.ids[id] = true
				}
			}
		}
	}
	return s
}

// isID reports whether the file of device and inode id is one of the
// database's files: a hard link to one, under any name, is.
func (s *selfFiles) isID(id fileID) bool {
	return s != nil && id != (fileID{}) && s.ids[id]
}

// is reports whether fi, named name in the directory dirID, is one of the
// database's files.
func (s *selfFiles) is(dirID fileID, name string, fi fs.FileInfo) bool {
	if s == nil {
		return false
	}
	if dirID != (fileID{}) && s.entries[selfEntry{dirID, name}] {
		return true
	}
	if fi == nil {
		return false
	}
	id, ok := idOf(fi)
	return ok && s.ids[id]
}

// walk visits root. A root that is a symbolic link is followed. It returns
// the first error of the visitor, or ctx's error.
func (w *walker) walk(ctx context.Context, root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		w.v.problem(root, false, err)
		return nil
	}
	switch {
	case fi.IsDir():
		return w.walkDir(ctx, root, root, "", nil)
	case fi.Mode().IsRegular():
		dir := filepath.Dir(root)
		if w.self.is(fileID{}, "", fi) {
			return nil
		}
		if err := w.v.enterDir(ctx, dir); err != nil {
			return err
		}
		lfi, err := os.Lstat(root)
		link := err == nil && lfi.Mode()&fs.ModeSymlink != 0
		st := stateOf(fi)
		if err := w.v.file(ctx, dir, filepath.Base(root), &st, link); err != nil {
			return err
		}
		return w.v.leaveDir(ctx, dir, false)
	default:
		w.v.problem(root, false, fmt.Errorf("not a regular file or directory (%v)", fi.Mode().Type()))
		return nil
	}
}

// dirState is what entry needs to know about the directory being listed.
type dirState struct {
	root, dir string
	fd        uintptr    // the open directory's descriptor
	scratch   []byte     // for lstatAt
	ahead     *statAhead // statting the listing from its end, or nil
	id        fileID
	subdirs   []string
}

// walkDir walks dir, a directory under root. after is the directory the
// walker enters once dir and its subdirectories are done, or "": the
// visitor is told of it ahead if dir has no subdirectory.
func (w *walker) walkDir(ctx context.Context, root, dir, after string, ancestors []fileID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		w.v.problem(dir, true, err)
		return nil
	}
	d := &dirState{root: root, dir: dir}
	if fi, err := f.Stat(); err == nil {
		if id, ok := idOf(fi); ok {
			d.id = id
			for _, a := range ancestors {
				if a == id {
					f.Close()
					w.v.problem(dir, false, errSymlinkLoop)
					return nil
				}
			}
			ancestors = append(ancestors, id)
		}
	}
	// Only where loops cannot be told by device and inode: a tree nested
	// deeper, without links to follow, is walked whole.
	if len(ancestors) == 0 && w.follow && depth(dir) > maxDepth {
		f.Close()
		w.v.problem(dir, false, errSymlinkLoop)
		return nil
	}
	// Before the listing: the visitor may start looking up what it knows
	// of dir while the walker lists it.
	if err := w.v.enterDir(ctx, dir); err != nil {
		f.Close()
		return err
	}
	list, rerr := readDir(f, w.earlyStarter(ctx, d))
	complete := true
	if rerr != nil {
		w.v.problem(dir, true, rerr)
		complete = false
	}
	sortDirents(list)
	if av, ok := w.v.(aheadVisitor); ok {
		if next := w.firstSubdir(d, list); next != "" {
			av.enterNext(ctx, next)
		} else if after != "" {
			av.enterNext(ctx, after)
		}
	}
	d.fd = f.Fd()
	if sv, ok := w.v.(statesVisitor); ok && len(list) >= statSplitMin && sv.wantsStates() {
		d.ahead = startStatAhead(d.fd, dir, list)
	}
	closeDir := func() {
		d.ahead.close() // before the descriptor it uses
		f.Close()
	}
	for i, e := range list {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				closeDir()
				return err
			}
		}
		if err := w.entry(ctx, d, i, e); err != nil {
			closeDir()
			return err
		}
	}
	closeDir()
	if err := w.v.leaveDir(ctx, dir, complete); err != nil {
		return err
	}
	for i, sub := range d.subdirs {
		next := after
		if i+1 < len(d.subdirs) {
			next = d.subdirs[i+1]
		}
		if err := w.walkDir(ctx, root, sub, next, ancestors); err != nil {
			return err
		}
	}
	return nil
}

// firstSubdir is the path of the first directory of list, the sorted
// listing of d, that the walk enters, or "": the directory that the walker
// enters after d's files, unless a symbolic link it follows comes first.
func (w *walker) firstSubdir(d *dirState, list []dirent) string {
	for _, e := range list {
		if !e.typ.IsDir() {
			continue
		}
		path := filepath.Join(d.dir, e.name)
		if w.exclude == nil || !w.exclude.skip(e.name, true, func() string { return relTo(d.root, path) }) {
			return path
		}
	}
	return ""
}

// earlyStarter returns the function that starts the files of the listing
// of d that the visitor hashes early (early.go), or nil.
func (w *walker) earlyStarter(ctx context.Context, d *dirState) func([]dirent) {
	ev, ok := w.v.(earlyVisitor)
	if !ok {
		return nil
	}
	start := ev.early(ctx, d.dir)
	if start == nil {
		return nil
	}
	return func(chunk []dirent) {
		for i := range chunk {
			e := &chunk[i]
			// The regular files that entry would hand to the visitor
			// with no state: not excluded, not the database's.
			if !e.typ.IsRegular() || w.self.is(d.id, e.name, nil) ||
				w.exclude != nil && w.exclude.skip(e.name, false, func() string { return relTo(d.root, filepath.Join(d.dir, e.name)) }) {
				continue
			}
			if e.early = start(e.name); e.early == nil {
				return // no room in the pool now
			}
		}
	}
}

// lstat is lstatAt of list[i], named name, or the statting ahead's result.
func (d *dirState) lstat(i int, name string) (fileState, bool, error) {
	if r, ok := d.ahead.result(i); ok {
		return r.st, r.regular, r.err
	}
	return lstatAt(d.fd, d.dir, name, &d.scratch)
}

// entry visits list[i], e, of the directory d.
func (w *walker) entry(ctx context.Context, d *dirState, i int, e dirent) error {
	if e.early != nil {
		return w.v.(earlyVisitor).fileEarly(ctx, d.dir, e.name, e.early)
	}
	name, t := e.name, e.typ
	if w.exclude != nil {
		isDir := t.IsDir()
		if t&fs.ModeSymlink != 0 && w.follow {
			fi, err := os.Stat(filepath.Join(d.dir, name))
			isDir = err == nil && fi.IsDir()
		}
		if w.exclude.skip(name, isDir, func() string { return relTo(d.root, filepath.Join(d.dir, name)) }) {
			return nil
		}
	}
	switch {
	case t.IsDir():
		d.subdirs = append(d.subdirs, filepath.Join(d.dir, name))
		return nil
	case t.IsRegular():
		if w.self.is(d.id, name, nil) {
			return nil
		}
		if !w.v.needState(name) {
			return w.v.file(ctx, d.dir, name, nil, false)
		}
		st, regular, err := d.lstat(i, name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the listing: it is gone
		}
		if err != nil {
			w.v.problem(filepath.Join(d.dir, name), false, err)
			return nil
		}
		if !regular { // replaced since the listing
			return nil
		}
		return w.v.file(ctx, d.dir, name, &st, false)
	case t&fs.ModeSymlink != 0 && w.follow:
		path := filepath.Join(d.dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			w.v.problem(path, false, err)
			return nil
		}
		switch {
		case fi.IsDir():
			d.subdirs = append(d.subdirs, path)
		case fi.Mode().IsRegular() && !w.self.is(fileID{}, "", fi):
			st := stateOf(fi)
			return w.v.file(ctx, d.dir, name, &st, true)
		}
		return nil
	default: // symbolic links (not followed), devices, pipes, sockets
		return nil
	}
}

// joinName is filepath.Join(dir, name) for a clean directory and the name
// of one of its entries (no separator, not "." or ".."): Join's cleaning of
// the result was 3% of the CPU time of a new index of small files.
func joinName(dir, name string) string {
	if strings.HasSuffix(dir, string(filepath.Separator)) { // the root
		return dir + name
	}
	return dir + string(filepath.Separator) + name
}

// relTo is path relative to root, which holds it, with slashes.
func relTo(root, path string) string {
	rel := strings.TrimPrefix(path[len(root):], string(filepath.Separator))
	return filepath.ToSlash(rel)
}

func depth(path string) int {
	n := 0
	for _, c := range path {
		if c == filepath.Separator {
			n++
		}
	}
	return n
}
