package aurora

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
)

// connectTimeout bounds one SQL connection attempt.
const connectTimeout = 5 * time.Second

// lagSQL reads one replica's lag from aurora_replica_status(): its replay lag in
// milliseconds, and the bytes between the writer's durable LSN and the replica's
// current read LSN.
const lagSQL = `WITH s AS (SELECT * FROM aurora_replica_status())
SELECT r.replica_lag_in_msec::float8,
  GREATEST(COALESCE((SELECT max(w.durable_lsn) FROM s w WHERE w.session_id = 'MASTER_SESSION_ID') - r.current_read_lsn, 0), 0)::bigint,
  COALESCE((SELECT max(w.durable_lsn) FROM s w WHERE w.session_id = 'MASTER_SESSION_ID'), 0)::bigint,
  COALESCE(r.current_read_lsn, 0)::bigint
FROM s r WHERE r.server_id = $1 AND r.session_id <> 'MASTER_SESSION_ID'`

// DSN returns the provider's DSN pointed at addr (host:port): its user, password,
// database and parameters, or postgres@addr/postgres without TLS when it has none.
// With Config.PassFile it names that file (passfile=), which pgx reads when the
// DSN has no password.
func (p *Provider) DSN(addr string) string {
	dsn := p.cfg.DSN
	if dsn == "" {
		dsn = "postgres://postgres@" + addr + "/postgres?sslmode=disable"
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Host = addr
	if p.cfg.PassFile != "" {
		q := u.Query()
		if q.Get("passfile") == "" {
			q.Set("passfile", p.cfg.PassFile)
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

func (p *Provider) connect(ctx context.Context, addr string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(p.DSN(addr))
	if err != nil {
		// The error may quote the DSN; never its password.
		return nil, fmt.Errorf("aurora: the DSN %s does not parse", Redact(p.DSN(addr)))
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("aurora: connect to %s: %w", addr, err)
	}
	return conn, nil
}

// Lag implements migrate.Provider from aurora_replica_status() on the writer,
// through the cluster's writer endpoint.
func (p *Provider) Lag(ctx context.Context, replica string) (migrate.Lag, error) {
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		return migrate.Lag{}, err
	}
	conn, err := p.connect(ctx, w)
	if err != nil {
		return migrate.Lag{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var (
		ms                 *float64
		l                  migrate.Lag
		writerLSN, readLSN int64
	)
	err = conn.QueryRow(ctx, lagSQL, replica).Scan(&ms, &l.Bytes, &writerLSN, &readLSN)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("aurora: %s has no row in aurora_replica_status() on the writer (not a replica yet?)", replica)
	}
	if err != nil {
		return l, fmt.Errorf("aurora: aurora_replica_status() through %s: %w", w, err)
	}
	if ms != nil {
		l.Time = time.Duration(*ms * float64(time.Millisecond))
	}
	l.WriterLSN, l.ReplayLSN = lsn(writerLSN), lsn(readLSN)
	return l, nil
}

// lsn formats a byte position as PostgreSQL prints an LSN.
func lsn(n int64) string { return fmt.Sprintf("%X/%X", uint64(n)>>32, uint32(n)) }

// probeWriter connects through the writer endpoint until it reaches writer as a
// primary; it returns the number of probes and the instance last reached.
func (p *Provider) probeWriter(ctx context.Context, endpointAddr, writer string) (int, string, error) {
	tick := time.NewTicker(min(p.cfg.Poll, 100*time.Millisecond))
	defer tick.Stop()
	probes := 0
	var got string
	for {
		probes++
		var rec bool
		conn, err := p.connect(ctx, endpointAddr)
		if err == nil {
			var id *string
			err = conn.QueryRow(ctx, "SELECT aurora_db_instance_identifier(), pg_is_in_recovery()").Scan(&id, &rec)
			conn.Close(context.WithoutCancel(ctx))
			if id != nil {
				got = *id
			}
		}
		if err == nil && got == writer && !rec {
			return probes, got, nil
		}
		select {
		case <-ctx.Done():
			return probes, got, fmt.Errorf("aurora: the writer endpoint %s does not reach %s as a writer (it reached %q, last error %v): %w",
				endpointAddr, writer, got, err, ctx.Err())
		case <-tick.C:
		}
	}
}
