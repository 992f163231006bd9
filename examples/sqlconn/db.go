package main

import (
	"database/sql"
	"log"

	"go.uber.org/fx"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// openDB opens the app-scoped database, closed by its own OnStop after the
// pool's, that is after every worker's connection.
func openDB(lc fx.Lifecycle) (*sql.DB, error) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(func() error {
		log.Printf("database closed, %d connections in use", db.Stats().InUse)
		return db.Close()
	}))
	return db, nil
}
