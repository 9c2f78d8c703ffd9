package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/internal/bluegreen"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// dumpTimeout bounds the schema dump and its restore.
const dumpTimeout = 5 * time.Minute

var _ migrate.BlueGreen = (*Cluster)(nil)

// blueGreen is a local blue/green deployment: green's nodes, a logical replication
// of the workload's database from blue's writer to green's, and the DNS names it
// added.
type blueGreen = bluegreen.Deployment[*Node]

// PreflightBlueGreen implements migrate.BlueGreen: the writer is a primary, no
// deployment exists, pg_dump and pg_restore are installed, the green engine version
// is not older than blue's, and what logical replication needs and cannot carry
// (pgsql.PreflightLogical) on the workload's database.
func (c *Cluster) PreflightBlueGreen(ctx context.Context, spec migrate.GreenSpec) ([]migrate.Check, error) {
	w := c.Writer()
	rec, err := w.InRecovery(ctx)
	if err != nil {
		return nil, fmt.Errorf("local: preflight on %s: %w", w.Name(), err)
	}
	c.mu.Lock()
	existing := ""
	if c.bg != nil {
		existing = c.bg.ID
	}
	c.mu.Unlock()
	var missing []string
	for _, p := range []string{"pg_dump", "pg_restore"} {
		if _, err := os.Stat(w.cfg.Bin.Path(p)); err != nil {
			missing = append(missing, p)
		}
	}
	checks := []migrate.Check{
		{Name: "writer is not in recovery", OK: !rec, Detail: w.Name() + " pg_is_in_recovery=" + strconv.FormatBool(rec)},
		{Name: "no blue/green deployment yet", OK: existing == "", Detail: bluegreen.OrNone(existing)},
		{Name: "pg_dump and pg_restore installed", OK: len(missing) == 0, Detail: w.cfg.Bin.Dir + map[bool]string{true: "", false: " lacks " + strings.Join(missing, ", ")}[len(missing) == 0]},
		greenVersionCheck(spec.EngineVersion, w.Version()),
	}
	logical, err := pgsql.PreflightLogical(ctx, w.dbQuery(Database))
	if err != nil {
		return nil, fmt.Errorf("local: %s: %w", w.Name(), err)
	}
	return append(checks, logical...), nil
}

// greenVersionCheck compares the green engine version asked for with blue's: older
// blocks; locally green runs the machine's binaries whatever is asked.
func greenVersionCheck(want, have string) migrate.Check {
	return bluegreen.VersionCheck(want, have, "green runs this machine's PostgreSQL %s; green.engine_version %s applies to Aurora")
}

// PlanGreen implements migrate.BlueGreen, read-only.
func (c *Cluster) PlanGreen(ctx context.Context, spec migrate.GreenSpec) (map[string]any, error) {
	w := c.Writer()
	var size int64
	if err := w.dbQuery(Database)(ctx, "SELECT pg_database_size(current_database())", nil, &size); err != nil {
		return nil, err
	}
	var nodes []string
	for _, n := range c.Nodes() {
		nodes = append(nodes, n.Name()+"-green-XXXXXX")
	}
	return map[string]any{
		"green_nodes": nodes,
		"would_run": []string{
			fmt.Sprintf("initdb %s; on %s: CREATE PUBLICATION FOR ALL TABLES and the DDL event trigger", nodes[0], w.Name()),
			fmt.Sprintf("pg_dump --schema-only %s | pg_restore on green", Database),
			"CREATE SUBSCRIPTION ... WITH (copy_data = true) on green; green read-only",
		},
		"copy_bytes": size,
	}, nil
}

// CreateGreen implements migrate.BlueGreen: green gets a node for each of blue's
// (the writer a new primary, the readers its streaming replicas), named after
// blue's with -green-<suffix>, as AWS names them; blue a publication FOR ALL TABLES
// and the DDL log; green blue's schema (pg_dump --schema-only, restored) and a
// subscription with the initial copy, and is read-only. On failure everything it
// created is removed again.
func (c *Cluster) CreateGreen(ctx context.Context, spec migrate.GreenSpec) (migrate.Deployment, error) {
	c.mu.Lock()
	if c.bg != nil {
		id := c.bg.ID
		c.mu.Unlock()
		return migrate.Deployment{}, fmt.Errorf("local: a blue/green deployment (%s) already exists", id)
	}
	bg := bluegreen.New[*Node]()
	c.bg = bg
	c.mu.Unlock()
	blue := c.Writer()
	bg.Rep = pgsql.Replication{Name: "rehearse_bg_" + bg.Suffix, Database: Database,
		BlueQuery: blue.dbQuery(Database), BlueExec: blue.dbExec(Database)}
	dep := migrate.Deployment{ID: bg.ID, Blue: blue.Name(), GreenVersion: blue.Version(), Status: "PROVISIONING", Detail: map[string]any{}}
	ok := false
	defer func() {
		if !ok {
			_, _ = c.deleteGreen(context.WithoutCancel(ctx), bg)
		}
	}()
	if ck := greenVersionCheck(spec.EngineVersion, blue.Version()); !ck.OK {
		return dep, errors.New("local: " + ck.Detail)
	}
	readers := c.readerNodes()
	gw, err := c.initNodeAs(ctx, c.template(bg.GreenName(blue.Name())), func(cfg Config) (*Node, error) { return InitPrimary(ctx, cfg) })
	if err != nil {
		return dep, fmt.Errorf("local: green writer: %w", err)
	}
	c.addOther(bg, gw, true)
	bg.Rep.GreenQuery, bg.Rep.GreenExec = gw.dbQuery(Database), gw.dbExec(Database)
	dep.Green, dep.GreenWriter = gw.Name(), gw.Name()
	if err := bg.Rep.PrepareBlue(ctx); err != nil {
		return dep, fmt.Errorf("local: %w", err)
	}
	copyStart := time.Now()
	if err := copySchema(ctx, blue, gw); err != nil {
		return dep, err
	}
	dep.Detail["schema_copy_ms"] = ms(time.Since(copyStart))
	// The subscription reads the password from the credentials' file: the server
	// runs as the OS user the file belongs to.
	conninfo := blue.Credentials().Conninfo(blue.Host(), blue.Port(), "dbname="+Database, "application_name="+bg.Rep.Name)
	if err := bg.Rep.Subscribe(ctx, conninfo); err != nil {
		return dep, fmt.Errorf("local: %w", err)
	}
	for _, r := range readers {
		n, err := c.initNodeAs(ctx, c.template(bg.GreenName(r.Name())), func(cfg Config) (*Node, error) { return InitReplica(ctx, cfg, gw) })
		if err != nil {
			return dep, fmt.Errorf("local: green reader: %w", err)
		}
		c.addOther(bg, n, false)
		if err := c.waitStreaming(ctx, gw, n.Name()); err != nil {
			return dep, err
		}
	}
	c.nameGreen(bg)
	ok = true
	var names []string
	for _, n := range bg.Other.List() {
		names = append(names, n.Name())
	}
	dep.Status = "AVAILABLE"
	dep.Detail["green_nodes"] = names
	dep.Detail["publication"], dep.Detail["subscription"] = bg.Rep.Name, bg.Rep.Name
	fmt.Fprintf(c.log, "blue/green deployment %s: green %v replicates %s from %s\n", bg.ID, names, Database, blue.Name())
	return dep, nil
}

// readerNodes are the cluster's running readers.
func (c *Cluster) readerNodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, id := range c.order {
		if n := c.nodes[id]; id != c.writer && n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// addOther adds n to the deployment's other environment and names it.
func (c *Cluster) addOther(bg *blueGreen, n *Node, writer bool) {
	c.mu.Lock()
	bg.Other.Add(n.Name(), n)
	if writer {
		bg.Other.Writer = n.Name()
	}
	c.mu.Unlock()
	c.name(n)
}

// copySchema restores blue's schema of the workload's database on green:
// pg_dump --schema-only in the custom format, then pg_restore of its table of
// contents without the deployment's event trigger.
func copySchema(ctx context.Context, blue, green *Node) error {
	file := filepath.Join(green.workDir, green.Name()+".schema.dump")
	list := file + ".list"
	defer os.Remove(file)
	defer os.Remove(list)
	if _, err := green.run(ctx, dumpTimeout, "pg_dump", pgsql.DumpArgs(blue.Host(), blue.Port(), Superuser, Database, file)...); err != nil {
		ce := asCommandError(err)
		ce.Op = "pg_dump --schema-only of " + blue.Name()
		return ce
	}
	toc, err := green.run(ctx, dumpTimeout, "pg_restore", "-l", file)
	if err != nil {
		return fmt.Errorf("local: pg_restore -l: %w", err)
	}
	if err := os.WriteFile(list, []byte(pgsql.RestoreList(toc)), 0o644); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	if green.id != nil {
		_ = green.id.chown(list)
	}
	if _, err := green.run(ctx, dumpTimeout, "pg_restore", "-L", list, "-h", green.Host(), "-p", strconv.Itoa(green.Port()),
		"-U", Superuser, "-d", Database, "--no-password", "--exit-on-error", file); err != nil {
		ce := asCommandError(err)
		ce.Op = "pg_restore of blue's schema on " + green.Name()
		return ce
	}
	return nil
}

// nameGreen gives green cluster endpoint names of its own, as AWS's green cluster
// has.
func (c *Cluster) nameGreen(bg *blueGreen) {
	c.mu.Lock()
	green := bg.Other.Env(c.labelLocked)
	c.mu.Unlock()
	bg.NameGreen(c.cfg.DNS, c.log, green)
}

// GreenSync implements migrate.BlueGreen.
func (c *Cluster) GreenSync(ctx context.Context) (migrate.GreenSync, error) {
	bg, err := c.deployment(false)
	if err != nil {
		return migrate.GreenSync{}, err
	}
	gs, err := bg.Rep.Sync(ctx)
	if err != nil {
		return gs, fmt.Errorf("local: %w", err)
	}
	return gs, nil
}

// deployment returns the deployment; switched says whether the caller needs it
// switched over (true) or not yet (false).
func (c *Cluster) deployment(switched bool) (*blueGreen, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bluegreen.Want("local", c.bg, switched)
}

// SwitchoverGreen implements migrate.BlueGreen through pgsql.Replication's
// switchover: the endpoints are held (PgBouncer pauses; DNS cannot hold), blue's
// database becomes read-only and its sessions end, green confirms blue's final LSN,
// the sequences are set, green becomes writable; then the cluster's members swap
// (green's nodes become the cluster's), the instance names move (blue's get -old1,
// green's take blue's), the -old1 cluster endpoint names lead to the old blue, and
// the endpoints are released to green.
func (c *Cluster) SwitchoverGreen(ctx context.Context, timeout time.Duration) (migrate.BlueGreenSwitchover, error) {
	bg, err := c.deployment(false)
	if err != nil {
		return migrate.BlueGreenSwitchover{}, err
	}
	blue := c.Writer()
	c.mu.Lock()
	green := bg.Other.Nodes[bg.Other.Writer]
	c.mu.Unlock()
	sw, err := bg.Rep.Switchover(ctx, timeout, pgsql.SwitchoverHooks{
		From: blue.Name(), To: green.Name(), Poll: 5 * time.Millisecond,
		Hold: func(ctx context.Context) error {
			if c.eps == nil {
				return nil
			}
			return c.eps.Hold(ctx)
		},
		Restore: func(ctx context.Context) error {
			if c.eps == nil {
				return nil
			}
			return c.eps.Release(ctx, addr(blue), c.readers())
		},
		Commit: func(ctx context.Context) (map[string]string, error) { return c.commitGreen(ctx, bg) },
	})
	if err != nil {
		return sw, fmt.Errorf("local: %w", err)
	}
	return sw, nil
}

// commitGreen makes green the cluster: it swaps the members, moves the names and
// releases the endpoints to green's writer.
func (c *Cluster) commitGreen(ctx context.Context, bg *blueGreen) (map[string]string, error) {
	c.mu.Lock()
	blue := bg.Swap(&c.nodes, &c.order, &c.writer)
	c.mu.Unlock()
	w := c.Writer()
	// The endpoints first (dns: their records flip after the propagation delay, as
	// for any writer change), then the instance names.
	var err error
	if c.eps != nil {
		err = c.eps.Release(ctx, addr(w), c.readers())
	}
	renamed := c.renameForSwitchover(bg)
	fmt.Fprintf(c.log, "blue/green switchover: %s is the writer; the old blue %s is read-only\n", w.Name(), blue.Writer)
	if n, eerr := bg.Rep.EndBlueSessions(ctx); eerr == nil && n > 0 {
		fmt.Fprintf(c.log, "blue/green switchover: ended %d session(s) that reached the old blue while it ran\n", n)
	}
	return renamed, err
}

// renameForSwitchover moves the instance names as AWS renames instances
// (bluegreen's Moves and Rename). It returns old name -> new name.
func (c *Cluster) renameForSwitchover(bg *blueGreen) map[string]string {
	c.mu.Lock()
	moves := bg.Moves(c.order, c.labelLocked)
	hosts := map[string]netip.Addr{}
	for _, m := range moves {
		c.labels[m.ID] = m.To
		n, ok := c.nodes[m.ID]
		if !ok {
			n = bg.Other.Nodes[m.ID]
		}
		hosts[m.ID] = netip.MustParseAddr(n.Host())
	}
	green := (&bluegreen.Members[*Node]{Nodes: c.nodes, Order: c.order, Writer: c.writer}).Env(c.labelLocked)
	oldBlue := bg.Other.Env(c.labelLocked)
	c.mu.Unlock()
	return bg.Rename(c.cfg.DNS, c.log, moves, func(id string) netip.Addr { return hosts[id] }, green, oldBlue)
}

// KeepOldBlue implements migrate.BlueGreen: a read through the old blue's -old1
// cluster endpoint (its writer's address without a DNS server) succeeds, and a
// write is refused.
func (c *Cluster) KeepOldBlue(ctx context.Context) (map[string]any, error) {
	bg, err := c.deployment(true)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	ob := bg.Other.Nodes[bg.Other.Writer]
	c.mu.Unlock()
	target := ob.Addr()
	cfg, err := pgx.ParseConfig(c.Credentials().DSN(target, Database))
	if err != nil {
		return nil, err
	}
	d := map[string]any{"old_blue_writer": ob.Name()}
	if dns := c.cfg.DNS; dns != nil {
		name := bluegreen.ClusterNames(dns, migrate.OldSuffix).Writer()
		_, port, _ := net.SplitHostPort(target)
		if cfg, err = pgx.ParseConfig(c.Credentials().DSN(net.JoinHostPort(name, port), Database)); err != nil {
			return nil, err
		}
		cfg.LookupFunc = dnsserver.NewResolver(dns.Addr()).LookupHost
		d["old_blue_endpoint"] = name
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return d, fmt.Errorf("local: the old blue: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var host string
	var tables int64
	if err := conn.QueryRow(ctx, "SELECT host(inet_server_addr()), count(*) FROM pg_class").Scan(&host, &tables); err != nil {
		return d, fmt.Errorf("local: a read on the old blue: %w", err)
	}
	if host != ob.Host() {
		return d, fmt.Errorf("local: the old blue's name reaches %s, not %s's %s", host, ob.Name(), ob.Host())
	}
	_, werr := conn.Exec(ctx, "CREATE TEMP TABLE rehearse_write_probe (x int)")
	d["reads"] = "ok"
	d["writes_refused"] = werr != nil
	if werr == nil {
		return d, fmt.Errorf("local: the old blue %s took a write: it should be read-only", ob.Name())
	}
	return d, nil
}

// DeleteDeployment implements migrate.BlueGreen. Before the switchover it removes
// green and what the deployment created on blue; after it, the old blue's nodes and
// names (locally nothing else would stop them) and the replication's leftovers.
func (c *Cluster) DeleteDeployment(ctx context.Context) (map[string]any, error) {
	c.mu.Lock()
	bg := c.bg
	c.mu.Unlock()
	if bg == nil {
		return nil, errors.New("local: there is no blue/green deployment")
	}
	return c.deleteGreen(ctx, bg)
}

// deleteGreen removes the deployment's other environment (green, or after the
// switchover the old blue), its names and the replication objects.
func (c *Cluster) deleteGreen(ctx context.Context, bg *blueGreen) (map[string]any, error) {
	var errs []error
	c.mu.Lock()
	nodes := bg.Other.List()
	switched := bg.Switched
	c.mu.Unlock()
	d := map[string]any{"deployment": bg.ID}
	if bg.Rep.GreenExec != nil {
		errs = append(errs, bg.Rep.DropSubscription(ctx))
	}
	if !switched {
		// Blue is the cluster's writer and keeps serving: drop what the deployment
		// made there. After the switchover it is the old blue, removed below.
		errs = append(errs, bg.Rep.DropBlue(ctx))
	}
	var removed []string
	for _, n := range nodes {
		if err := n.Remove(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		c.unname(n.Name())
		removed = append(removed, n.Name())
	}
	bg.RemoveNames(c.cfg.DNS)
	key := "removed_green"
	if switched {
		key = "removed_old_blue"
	}
	d[key] = removed
	err := errors.Join(errs...)
	if err == nil {
		c.mu.Lock()
		if c.bg == bg {
			c.bg = nil
		}
		c.mu.Unlock()
	}
	return d, err
}

// closeBlueGreen stops and removes the deployment's other environment (Close).
func (c *Cluster) closeBlueGreen(ctx context.Context) error {
	c.mu.Lock()
	bg := c.bg
	c.bg = nil
	c.mu.Unlock()
	if bg == nil {
		return nil
	}
	var errs []error
	for _, n := range bg.Other.List() {
		errs = append(errs, n.Close(ctx))
		c.unname(n.Name())
	}
	bg.RemoveNames(c.cfg.DNS)
	return errors.Join(errs...)
}

// dbQuery runs one query on db, in a session whose default_transaction_read_only
// is off (a blue/green switchover makes the database read-only for new sessions).
func (n *Node) dbQuery(db string) pgsql.QueryRow {
	return func(ctx context.Context, sql string, args []any, dest ...any) error {
		c, err := n.connectRW(ctx, db)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		return c.QueryRow(ctx, sql, args...).Scan(dest...)
	}
}

// dbExec runs statements (several, separated by semicolons) on db, in a session
// whose default_transaction_read_only is off.
func (n *Node) dbExec(db string) pgsql.Exec {
	return func(ctx context.Context, sql string) error {
		c, err := n.connectRW(ctx, db)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		_, err = c.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
}

func (n *Node) connectRW(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(n.DSN(db))
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	cfg.RuntimeParams["application_name"] = "rehearse-bluegreen"
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("local: connect to %s: %w", n.cfg.Name, err)
	}
	return c, nil
}

// DeploymentNodes are the nodes of the blue/green deployment's other environment:
// green's before the switchover, the old blue's after it (none without a
// deployment).
func (c *Cluster) DeploymentNodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bg == nil {
		return nil
	}
	return c.bg.Other.List()
}
