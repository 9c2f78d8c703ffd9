package endpoint_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
)

// A provider's planned switchover from node1 to node2, the same in every mode: the
// load's pools connect to the endpoints with the mode's exec mode, resolving their
// names through the cluster's DNS server; Hold before the old writer stops, Release
// once the new one is promoted. (The cluster, migrate/local, gives node1 and node2
// their instance names on the server.)
func ExampleMode() {
	ctx := context.Background()
	srv, err := dnsserver.Start(ctx, dnsserver.Config{Addr: "127.0.0.1:0", Names: dnsserver.NewNames("demo"), TTL: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	node1, node2 := "127.31.7.2:5432", "127.31.7.3:5432"
	eps, err := endpoint.New(ctx, endpoint.Config{
		Mode: endpoint.ModeDNS, Writer: node1, Readers: []string{node2},
		DNS: srv, Propagation: 2 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eps.Close(ctx)

	// eps.WriterAddr() is "demo.cluster-<id>.rehearse.internal:5432".
	cfg, _ := pgxpool.ParseConfig("postgres://postgres@" + eps.WriterAddr() + "/rehearse?sslmode=disable")
	cfg.ConnConfig.DefaultQueryExecMode = eps.ExecMode()
	cfg.ConnConfig.LookupFunc = dnsserver.NewResolver(srv.Addr()).LookupHost
	pool, _ := pgxpool.NewWithConfig(ctx, cfg)
	defer pool.Close()

	_ = eps.SetForwarding(ctx, true) // forward_writes
	if err := eps.Hold(ctx); err != nil {
		return // do not switch over: in-flight transactions did not finish
	}
	// ... fast-stop node1, let node2 replay its last LSN, pg_promote node2 ...
	_ = eps.SetForwarding(ctx, false)
	_ = eps.Release(ctx, node2, nil) // redirect: no readers until node1 rejoins
	// ... later, once node1 follows node2 (keep_rollback_target):
	_ = eps.SetReaders(ctx, []string{node1})
}
