// Command ferretdb runs FerretDB 1.x (a MongoDB wire-protocol server) on the PostgreSQL
// backend through FerretDB's embeddable package.
//
// Why a wrapper: `go install .../cmd/ferretdb@v1.24.0` panics at start because module
// downloads lack the generated build/version/version.txt; the embeddable package is the
// supported way to run FerretDB from a module dependency.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL backend URL (or env FERRETDB_POSTGRESQL_URL)")
	flag.Parse()

	url := *postgresqlURL
	if url == "" {
		url = os.Getenv("FERRETDB_POSTGRESQL_URL")
	}
	if url == "" {
		log.Fatal("no PostgreSQL backend: pass --postgresql-url or set FERRETDB_POSTGRESQL_URL")
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	server, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: url,
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger.Info("FerretDB listening", "addr", *listenAddr)
	if err := server.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
