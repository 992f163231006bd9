package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// visitor receives what a walker finds. A non-nil error from a visitor
// method stops the walk and is returned by walk.
type visitor interface {
	// enterDir is called for each directory that could be opened, before
	// its entries.
	enterDir(ctx context.Context, dir string) error
	// file is called for each regular file (or, with follow, each symbolic
	// link to one) with its lstat (stat) information.
	file(ctx context.Context, dir, path string, fi fs.FileInfo) error
	// leaveDir is called after the entries of dir; complete is false if the
	// listing was cut short or dir is the parent of a file named as a root.
	leaveDir(ctx context.Context, dir string, complete bool) error
	// problem reports a path that could not be read. A directory that
	// could not be listed is reported with dir set.
	problem(path string, isDir bool, err error)
}

// errSymlinkLoop reports a followed symbolic link that leads back to one of
// its own ancestors.
var errSymlinkLoop = errors.New("symbolic link loop")

// maxDepth bounds the nesting of followed directories where loops cannot
// be detected by device and inode.
const maxDepth = 1024

// walker walks trees depth first, listing each directory in chunks, with no
// more than one directory open at a time.
type walker struct {
	follow bool
	// noStat skips the lstat of regular files: file gets a nil FileInfo.
	noStat bool
	// skip holds paths never to visit: the index's own database files,
	// which change while they are hashed.
	skip map[string]bool
	v    visitor
}

// dbFiles lists a SQLite database file and the files SQLite keeps beside it.
func dbFiles(db string) map[string]bool {
	return map[string]bool{db: true, db + "-wal": true, db + "-shm": true, db + "-journal": true}
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
		return w.walkDir(ctx, root, nil)
	case fi.Mode().IsRegular():
		dir := filepath.Dir(root)
		if err := w.v.enterDir(ctx, dir); err != nil {
			return err
		}
		if err := w.v.file(ctx, dir, root, fi); err != nil {
			return err
		}
		return w.v.leaveDir(ctx, dir, false)
	default:
		w.v.problem(root, false, fmt.Errorf("not a regular file or directory (%v)", fi.Mode().Type()))
		return nil
	}
}

func (w *walker) walkDir(ctx context.Context, dir string, ancestors []fileID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		w.v.problem(dir, true, err)
		return nil
	}
	if fi, err := f.Stat(); err == nil {
		if id, ok := idOf(fi); ok {
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
	if len(ancestors) > maxDepth || len(ancestors) == 0 && w.follow && depth(dir) > maxDepth {
		f.Close()
		w.v.problem(dir, false, errSymlinkLoop)
		return nil
	}
	if err := w.v.enterDir(ctx, dir); err != nil {
		f.Close()
		return err
	}
	var subdirs []string
	complete := true
	for {
		ents, rerr := f.ReadDir(1024)
		for _, e := range ents {
			path := filepath.Join(dir, e.Name())
			if err := w.entry(ctx, dir, path, e, &subdirs); err != nil {
				f.Close()
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.v.problem(dir, true, rerr)
			complete = false
			break
		}
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	if err := w.v.leaveDir(ctx, dir, complete); err != nil {
		return err
	}
	for _, sub := range subdirs {
		if err := w.walkDir(ctx, sub, ancestors); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) entry(ctx context.Context, dir, path string, e fs.DirEntry, subdirs *[]string) error {
	t := e.Type()
	switch {
	case w.skip[path]:
		return nil
	case t.IsDir():
		*subdirs = append(*subdirs, path)
		return nil
	case t.IsRegular() && w.noStat:
		return w.v.file(ctx, dir, path, nil)
	case t.IsRegular():
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the listing: it is gone
		}
		if err != nil {
			w.v.problem(path, false, err)
			return nil
		}
		if !fi.Mode().IsRegular() { // replaced since the listing
			return nil
		}
		return w.v.file(ctx, dir, path, fi)
	case t&fs.ModeSymlink != 0 && w.follow:
		fi, err := os.Stat(path)
		if err != nil {
			w.v.problem(path, false, err)
			return nil
		}
		switch {
		case fi.IsDir():
			*subdirs = append(*subdirs, path)
		case fi.Mode().IsRegular():
			return w.v.file(ctx, dir, path, fi)
		}
		return nil
	default: // symbolic links (not followed), devices, pipes, sockets
		return nil
	}
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
