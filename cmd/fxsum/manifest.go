package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// runManifest is "fxsum manifest": the rows of one algorithm as
// "<hex>  <path>" lines sorted by path, in the format of GNU coreutils'
// sha256sum (and b3sum, sha512sum), so that "sha256sum -c" checks them.
func runManifest(ctx context.Context, o *options, stdout io.Writer) (err error) {
	dbFile, err := filepath.Abs(o.db)
	if err != nil {
		return usagef("--db %s: %w", o.db, err)
	}
	root := ""
	if o.root != "" {
		if root, err = filepath.Abs(o.root); err != nil {
			return usagef("--root %s: %w", o.root, err)
		}
		fi, err := os.Stat(root)
		if err != nil {
			return usagef("--root %s: %w", o.root, pathCause(err))
		}
		if !fi.IsDir() {
			return usagef("--root %s: not a folder", o.root)
		}
	}
	db, err := openDB(ctx, dbFile, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()

	algo := o.algo
	if !o.algoSet {
		var algos []string
		rows, err := db.QueryContext(ctx, `SELECT DISTINCT algo FROM files ORDER BY algo`)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return fmt.Errorf("manifest: %w", err)
			}
			algos = append(algos, a)
		}
		rows.Close()
		if len(algos) > 1 {
			return usagef("manifest: the index holds digests of %s; choose one with --algo", strings.Join(algos, ", "))
		}
		if len(algos) == 1 {
			algo = algos[0]
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT dir, name, digest FROM files WHERE algo = ? ORDER BY `+pathExpr, algo)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	defer rows.Close()
	w := bufio.NewWriterSize(stdout, 64<<10)
	for rows.Next() {
		var (
			dir, name string
			digest    []byte
		)
		if err := rows.Scan(&dir, &name, &digest); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		path := filepath.Join(dir, name)
		if root != "" {
			if !under(path, root) || path == root {
				continue
			}
			if path, err = filepath.Rel(root, path); err != nil {
				return fmt.Errorf("manifest: %w", err)
			}
			path = notStdin(path)
		}
		if _, err := w.WriteString(manifestLine(digest, path, algo)); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// manifestLine is one line of a GNU checksum file. A name with a backslash,
// a newline or a carriage return is escaped (\\, \n, \r) and its line starts
// with a backslash, as coreutils 9 writes and reads it. A BLAKE3 line is as
// b3sum writes it, which escapes the backslash and the newline only: "b3sum
// -c" refuses \r.
func manifestLine(digest []byte, path, algo string) string {
	h := hex.EncodeToString(digest)
	special, r := "\\\n\r", coreutilsEscapes
	if algo == "blake3" {
		special, r = "\\\n", b3sumEscapes
	}
	if !strings.ContainsAny(path, special) {
		return h + "  " + path + "\n"
	}
	return `\` + h + "  " + r.Replace(path) + "\n"
}

var (
	coreutilsEscapes = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
	b3sumEscapes     = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// notStdin is a relative path that checkers do not read as standard input:
// "sha256sum -c" reads a file named "-" from stdin, "./-" from the file.
func notStdin(rel string) string {
	if rel == "-" {
		return "./-"
	}
	return rel
}
