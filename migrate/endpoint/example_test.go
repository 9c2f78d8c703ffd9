package endpoint_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/migrate/endpoint"
)

// A provider's planned switchover from node1 to node2, the same in both modes: the
// load's pools connect to the endpoints with the mode's exec mode; Hold before the
// old writer stops, Release once the new one is promoted.
func ExampleMode() {
	ctx := context.Background()
	node1, node2 := "127.0.0.1:5433", "127.0.0.1:5434"
	eps, err := endpoint.New(ctx, endpoint.Config{
		Mode: endpoint.ModeProxy, Writer: node1, Readers: []string{node2},
		Dir: "/tmp/rehearse-endpoints", Stale: 2 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eps.Close(ctx)

	cfg, _ := pgxpool.ParseConfig("postgres://postgres@" + eps.WriterAddr() + "/rehearse?sslmode=disable")
	cfg.ConnConfig.DefaultQueryExecMode = eps.ExecMode()
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
