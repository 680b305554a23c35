// Command ferretdb serves the MongoDB wire protocol over FerretDB's SQLite backend.
// It is built from the FerretDB module because `go install .../cmd/ferretdb` panics at start.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve the MongoDB protocol on")
	dataDir := flag.String("data", "./data", "directory for the SQLite databases")
	// WAL (FerretDB's default journal) with synchronous=NORMAL survives a crash of any process and
	// skips an fsync per commit; only a power cut may lose the last commits. Production runs MongoDB.
	synchronous := flag.String("synchronous", "normal", "SQLite synchronous pragma: off, normal, full or extra")
	// FerretDB allocates a great deal per request (documents are decoded from JSON each time): collecting
	// garbage less often cut its CPU per operation by a fifth to a third here, for some 15 MB more memory.
	gcPercent := flag.Int("gc-percent", 400, "Go GC target percentage (GOGC), unless GOGC is set")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(*gcPercent)
	}

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}

	db, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/?_pragma=synchronous(" + *synchronous + ")",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go keepLookupIndexes(ctx, dir)
	log.Printf("ferretdb listening on %s, data in %s", *listen, dir)
	if err := db.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
