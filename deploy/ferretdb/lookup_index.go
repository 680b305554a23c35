package main

// FerretDB v1.24's SQLite backend finds a document by `_id` with the expression
// `_ferretdb_sjson->'$._id'`, while the unique index it creates is on `_ferretdb_sjson->"_id"`.
// SQLite cannot use an index on a different expression, so every lookup by `_id` scans the table.
// This file adds, beside FerretDB's own index, one on the exact expression its queries use.

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver FerretDB itself uses
)

const lookupExpr = `_ferretdb_sjson->'$._id'`

// keepLookupIndexes adds the `_id` lookup index to every collection table, now and as new ones appear.
func keepLookupIndexes(ctx context.Context, dir string) {
	dbs := map[string]*sql.DB{}
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			db, ok := dbs[file]
			if !ok {
				var err error
				if db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)"); err != nil {
					log.Printf("lookup index: %s: %v", file, err)
					continue
				}
				db.SetMaxOpenConns(1)
				dbs[file] = db
			}
			if err := indexTables(ctx, db); err != nil && ctx.Err() == nil {
				log.Printf("lookup index: %s: %v", file, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func indexTables(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return nil // the database file is new and FerretDB has not created its metadata table yet
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()
	for _, table := range tables {
		stmt := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, table+"_id_lookup", table, lookupExpr)
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
	}
	return nil
}
