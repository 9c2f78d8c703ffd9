package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// LocalBackend is a Backend over a real local primary/replica cluster behind
// Aurora-like endpoints. Its cluster endpoints are on 127.0.0.1 (the RDS API
// reports them as 127.0.0.1:port, which a client reaches without the cluster's DNS
// server): in the dns mode they are endpoint.Forwarders, whose stale window stands
// for DNS caching; in the proxy mode PgBouncers. The nodes listen on loopback
// addresses of their own, on one port.
type LocalBackend struct {
	c   *local.Cluster
	log io.Writer
}

var _ Backend = (*LocalBackend)(nil)

// LocalConfig describes the local cluster StartLocal starts.
type LocalConfig struct {
	// Node is the template for every node (Dir and Bin are required).
	Node local.Config
	// EndpointMode is endpoint.ModeDNS (default: forwarders on 127.0.0.1, see
	// LocalBackend) or endpoint.ModeProxy.
	EndpointMode string
	// Stale is the dns endpoints' stale window (0: endpoint.DefaultPropagation;
	// negative: none).
	Stale time.Duration
	// PoolSize and MaxClientConn size the proxy mode's PgBouncers (0: defaults).
	PoolSize, MaxClientConn int
}

// StartLocal starts a one-node local cluster (the writer) with cluster endpoints and
// returns a backend over it.
func StartLocal(ctx context.Context, cfg LocalConfig) (*LocalBackend, error) {
	logw := cfg.Node.Log
	if logw == nil {
		logw = io.Discard
	}
	mode := cfg.EndpointMode
	if mode == "" || mode == endpoint.ModeDNS {
		mode = endpoint.ModeForward
	}
	cfg.Node.ExtraConf = withLogicalWAL(cfg.Node.ExtraConf)
	c, err := local.StartCluster(ctx, local.ClusterConfig{
		Node: cfg.Node,
		Endpoints: func(ctx context.Context, writer string) (local.Endpoints, error) {
			return endpoint.New(ctx, endpoint.Config{
				Mode: mode, Writer: writer, Propagation: cfg.Stale,
				Dir:      filepath.Join(cfg.Node.Dir, "pgbouncer"),
				PoolSize: cfg.PoolSize, MaxClientConn: cfg.MaxClientConn, Log: logw,
			})
		},
	})
	if err != nil {
		return nil, err
	}
	return &LocalBackend{c: c, log: logw}, nil
}

// NewLocalBackend returns a backend over an already running cluster.
func NewLocalBackend(c *local.Cluster, log io.Writer) *LocalBackend {
	if log == nil {
		log = io.Discard
	}
	return &LocalBackend{c: c, log: log}
}

// Cluster returns the local cluster.
func (l *LocalBackend) Cluster() *local.Cluster { return l.c }

// Close stops the cluster and its endpoints and removes their data.
func (l *LocalBackend) Close(ctx context.Context) error { return l.c.Close(ctx) }

// WriterEndpoint implements Backend.
func (l *LocalBackend) WriterEndpoint() string { return l.c.WriterEndpoint() }

// ReaderEndpoint implements Backend.
func (l *LocalBackend) ReaderEndpoint() string { return l.c.ReaderEndpoint() }

// Writer implements Backend.
func (l *LocalBackend) Writer() string { return l.c.Writer().Name() }

// NodeAddr implements Backend: the node's own loopback address, on the port every
// node shares, as Aurora instances share 5432.
func (l *LocalBackend) NodeAddr(node string) string {
	for _, n := range l.c.Nodes() {
		if n.Name() == node {
			return n.Addr()
		}
	}
	return ""
}

// CreateReplica implements Backend: the local cluster's pg_basebackup under load.
// The status follows the base backup's real progress on the writer
// (pg_stat_progress_basebackup): "creating" while it runs, "backing-up" once it has
// finished and the new replica starts and connects.
func (l *LocalBackend) CreateReplica(ctx context.Context, progress func(status string)) (string, error) {
	w := l.c.Writer()
	pctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		seen := false
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var phase *string
			err := queryRow(pctx, w, "SELECT (SELECT phase FROM pg_stat_progress_basebackup LIMIT 1)", &phase)
			if err == nil {
				switch {
				case phase != nil && *phase != "transferring wal files":
					seen = true
				case phase != nil || seen:
					progress("backing-up")
					return
				}
			}
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	n, err := l.c.CreateReplica(ctx)
	stop()
	<-watched
	if err != nil {
		return "", err
	}
	progress("backing-up")
	return n.ID, nil
}

func queryRow(ctx context.Context, n *local.Node, sql string, dest ...any) error {
	conn, err := n.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// Failover implements Backend: a planned switchover onto target, the endpoints
// redirected to it, and the old writer restarted as its replica (Aurora keeps the
// old writer in the cluster as a reader). When the switchover fails before the
// writer changed, the old writer is recovered.
func (l *LocalBackend) Failover(ctx context.Context, target string) error {
	old := l.c.Writer().Name()
	if _, err := l.c.Switchover(ctx, target); err != nil {
		if l.c.Writer().Name() == old {
			err = errors.Join(err, l.c.Recover(context.WithoutCancel(ctx), old))
		}
		return fmt.Errorf("switchover to %s: %w", target, err)
	}
	if _, err := l.c.Redirect(ctx, target); err != nil {
		return fmt.Errorf("redirect to %s: %w", target, err)
	}
	if _, err := l.c.Rejoin(ctx, old); err != nil {
		return fmt.Errorf("%s rejoins as a reader: %w", old, err)
	}
	return nil
}

// SetForwarding implements Backend (emulated at the endpoints).
func (l *LocalBackend) SetForwarding(ctx context.Context, on bool) error {
	return l.c.SetForwarding(ctx, on)
}

// Remove implements Backend.
func (l *LocalBackend) Remove(ctx context.Context, node string) error {
	return l.c.Remove(ctx, node)
}

// Sync implements Backend: (re)create aurora_replica_status() and
// aurora_db_instance_identifier() on the writer, in the postgres and workload
// databases; they replicate to every node.
func (l *LocalBackend) Sync(ctx context.Context, ids map[string]string) error {
	addrs := map[string]string{}
	for _, n := range l.c.Nodes() {
		addrs[n.Name()] = n.Addr()
	}
	sql := FunctionsSQL(ids, addrs)
	w := l.c.Writer()
	var errs []error
	for _, db := range []string{"postgres", local.Database} {
		conn, err := w.Connect(ctx, db)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			errs = append(errs, fmt.Errorf("create the Aurora SQL functions in %s: %w", db, err))
		}
		conn.Close(context.WithoutCancel(ctx))
	}
	return errors.Join(errs...)
}

// FunctionsSQL returns the SQL that creates Aurora PostgreSQL's
// aurora_replica_status() and aurora_db_instance_identifier() on plain PostgreSQL,
// for nodes named in ids (node -> instance id) listening on addrs (node ->
// host:port). A server finds itself by the address the connection reached
// (inet_server_addr, inet_server_port): the nodes share a port, each on its own
// address.
//
// aurora_replica_status() has a row for the writer (session_id MASTER_SESSION_ID,
// durable_lsn its current WAL position) and one per replica from
// pg_stat_replication (current_read_lsn its replay LSN, replica_lag_in_msec its
// replay lag); LSNs are bigint byte positions, as on Aurora. Only a subset of
// Aurora's columns is provided.
func FunctionsSQL(ids map[string]string, addrs map[string]string) string {
	nodes := make([]string, 0, len(ids))
	for n := range ids {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var rows []string
	for _, n := range nodes {
		host, port, _ := net.SplitHostPort(addrs[n])
		p, _ := strconv.Atoi(port)
		rows = append(rows, fmt.Sprintf("(%s, %s, %d, %s)", lit(n), lit(host), p, lit(ids[n])))
	}
	if len(rows) == 0 {
		rows = append(rows, "(NULL::text, NULL::text, NULL::int, NULL::text)")
	}
	m := "WITH m(node, host, port, instance) AS (VALUES " + strings.Join(rows, ", ") + ")"
	return `CREATE OR REPLACE FUNCTION public.aurora_replica_status()
RETURNS TABLE (server_id text, session_id text, durable_lsn bigint, highest_lsn_rcvd bigint,
  current_read_lsn bigint, replica_lag_in_msec real, last_update_timestamp timestamptz)
LANGUAGE sql STABLE AS $rehearse$
` + m + `
SELECT (SELECT instance FROM m WHERE host = host(inet_server_addr()) AND port = inet_server_port()), 'MASTER_SESSION_ID'::text,
  (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, NULL::bigint, NULL::bigint, NULL::real, now()
WHERE NOT pg_is_in_recovery()
UNION ALL
SELECT COALESCE(m.instance, r.application_name), r.application_name || '-' || r.pid,
  NULL::bigint, (r.flush_lsn - '0/0'::pg_lsn)::bigint, (r.replay_lsn - '0/0'::pg_lsn)::bigint,
  (extract(epoch FROM COALESCE(r.replay_lag, '0'::interval)) * 1000)::real, now()
FROM pg_stat_replication r LEFT JOIN m ON m.node = r.application_name
$rehearse$;
CREATE OR REPLACE FUNCTION public.aurora_db_instance_identifier() RETURNS text
LANGUAGE sql STABLE AS $rehearse$
` + m + `
SELECT instance FROM m WHERE host = host(inet_server_addr()) AND port = inet_server_port()
$rehearse$;`
}

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
