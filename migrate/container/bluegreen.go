package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/internal/bluegreen"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// dumpTimeout bounds the schema dump and its restore.
const dumpTimeout = 5 * time.Minute

var _ migrate.BlueGreen = (*Cluster)(nil)

// blueGreen is a blue/green deployment of containers: green's containers on the
// run's network, a logical replication of the workload's database from blue's
// writer to green's, and the DNS names it added.
type blueGreen = bluegreen.Deployment[*node]

// PreflightBlueGreen implements migrate.BlueGreen: the writer is a primary, no
// deployment exists, the image can start replicas, this machine has pg_dump and
// pg_restore (they run here, against the containers' published addresses), the
// green engine version is not older than blue's, and pgsql.PreflightLogical on the
// workload's database.
func (c *Cluster) PreflightBlueGreen(ctx context.Context, spec migrate.GreenSpec) ([]migrate.Check, error) {
	w := c.writerNode()
	var (
		rec     bool
		version string
	)
	if err := c.queryRow(ctx, w, "SELECT pg_is_in_recovery(), current_setting('server_version')", nil, &rec, &version); err != nil {
		return nil, fmt.Errorf("container: preflight on %s: %w", w.id, err)
	}
	c.mu.Lock()
	existing := ""
	if c.bg != nil {
		existing = c.bg.ID
	}
	c.mu.Unlock()
	tools := migrate.Check{Name: "pg_dump and pg_restore installed", OK: true}
	if dir, err := clientTools(ctx); err != nil {
		tools.OK, tools.Detail = false, err.Error()
	} else {
		tools.Detail = dir
	}
	version, _, _ = strings.Cut(version, " ")
	checks := []migrate.Check{
		{Name: "writer is not in recovery", OK: !rec, Detail: w.id + " pg_is_in_recovery=" + strconv.FormatBool(rec)},
		{Name: "no blue/green deployment yet", OK: existing == "", Detail: bluegreen.OrNone(existing)},
		{Name: "image has the rehearse-pg entrypoint (green's readers)", OK: true, Warning: true, Detail: c.cfg.Image},
		tools,
		greenVersionCheck(spec.EngineVersion, version),
	}
	if !c.rehearsePG {
		checks[2].OK = false
		checks[2].Detail += ": green gets no readers"
	}
	logical, err := pgsql.PreflightLogical(ctx, c.dbQuery(w, Database))
	if err != nil {
		return nil, fmt.Errorf("container: %s: %w", w.id, err)
	}
	return append(checks, logical...), nil
}

// greenVersionCheck compares the green engine version asked for with blue's: older
// blocks; green runs blue's image whatever is asked.
func greenVersionCheck(want, have string) migrate.Check {
	return bluegreen.VersionCheck(want, have, "green runs blue's image, PostgreSQL %s; green.engine_version %s applies to Aurora")
}

// clientTools finds pg_dump and pg_restore on this machine: the directory holding
// them, or an error naming what is missing.
func clientTools(ctx context.Context) (string, error) {
	bin, err := local.FindBinaries(ctx, "")
	if err != nil {
		return "", err
	}
	for _, p := range []string{"pg_dump", "pg_restore"} {
		if _, err := os.Stat(bin.Path(p)); err != nil {
			return "", fmt.Errorf("%s has no %s (install the PostgreSQL client programs)", bin.Dir, p)
		}
	}
	return bin.Dir, nil
}

// PlanGreen implements migrate.BlueGreen, read-only.
func (c *Cluster) PlanGreen(ctx context.Context, spec migrate.GreenSpec) (map[string]any, error) {
	w := c.writerNode()
	var size int64
	if err := c.dbQuery(w, Database)(ctx, "SELECT pg_database_size(current_database())", nil, &size); err != nil {
		return nil, err
	}
	var nodes []string
	for _, id := range c.NodeIDs() {
		nodes = append(nodes, id+"-green-XXXXXX")
	}
	return map[string]any{
		"green_nodes": nodes,
		"would_run": []string{
			fmt.Sprintf("containers %v from %s on network %s; on %s: CREATE PUBLICATION FOR ALL TABLES and the DDL event trigger", nodes, c.cfg.Image, c.netName, w.id),
			fmt.Sprintf("pg_dump --schema-only %s | pg_restore on green (this machine's client programs)", Database),
			"CREATE SUBSCRIPTION ... WITH (copy_data = true) on green; green read-only",
		},
		"copy_bytes": size,
	}, nil
}

// CreateGreen implements migrate.BlueGreen: a container per blue node on the run's
// network, named after blue's with -green-<suffix> (the writer a new primary, the
// readers its streaming replicas); blue's schema restored on green with this
// machine's pg_dump and pg_restore; a publication and the DDL log on blue and a
// subscription on green, which is read-only. On failure everything it created is
// removed again.
func (c *Cluster) CreateGreen(ctx context.Context, spec migrate.GreenSpec) (migrate.Deployment, error) {
	c.mu.Lock()
	if c.bg != nil {
		id := c.bg.ID
		c.mu.Unlock()
		return migrate.Deployment{}, fmt.Errorf("container: a blue/green deployment (%s) already exists", id)
	}
	bg := bluegreen.New[*node]()
	c.bg = bg
	c.mu.Unlock()
	blue := c.writerNode()
	bg.Rep = pgsql.Replication{Name: "rehearse_bg_" + bg.Suffix, Database: Database,
		BlueQuery: c.dbQuery(blue, Database), BlueExec: c.dbExec(blue, Database)}
	dep := migrate.Deployment{ID: bg.ID, Blue: blue.id, Status: "PROVISIONING", Detail: map[string]any{}}
	ok := false
	defer func() {
		if !ok {
			_, _ = c.deleteGreen(context.WithoutCancel(ctx), bg)
		}
	}()
	var version string
	if err := c.queryRow(ctx, blue, "SHOW server_version", nil, &version); err != nil {
		return dep, fmt.Errorf("container: %s: %w", blue.id, err)
	}
	version, _, _ = strings.Cut(version, " ")
	dep.GreenVersion = version
	if ck := greenVersionCheck(spec.EngineVersion, version); !ck.OK {
		return dep, errors.New("container: " + ck.Detail)
	}
	tools, err := clientTools(ctx)
	if err != nil {
		return dep, fmt.Errorf("container: %w", err)
	}
	readers := c.readerNodes()
	gw, err := c.startNode(ctx, bg.GreenName(blue.id), nil)
	if err != nil {
		return dep, fmt.Errorf("container: green writer: %w", err)
	}
	c.addOther(bg, gw, true)
	if err := c.createDatabase(ctx, gw); err != nil {
		return dep, err
	}
	bg.Rep.GreenQuery, bg.Rep.GreenExec = c.dbQuery(gw, Database), c.dbExec(gw, Database)
	dep.Green, dep.GreenWriter = gw.id, gw.id
	if err := bg.Rep.PrepareBlue(ctx); err != nil {
		return dep, fmt.Errorf("container: %w", err)
	}
	copyStart := time.Now()
	if err := c.copySchema(ctx, tools, blue, gw); err != nil {
		return dep, err
	}
	dep.Detail["schema_copy_ms"] = ms(time.Since(copyStart))
	// The green server reads the password from the postgres user's password file
	// in its container (written by the entrypoint), never from this string.
	conninfo := fmt.Sprintf("host=%s port=%d user=%s dbname=%s application_name=%s passfile=%s", blue.id, pgPort, Superuser, Database, bg.Rep.Name, containerPassFile)
	if err := bg.Rep.Subscribe(ctx, conninfo); err != nil {
		return dep, fmt.Errorf("container: %w", err)
	}
	if c.rehearsePG {
		for _, r := range readers {
			id := bg.GreenName(r.id)
			n, err := c.startNode(ctx, id, map[string]string{
				"REHEARSE_PRIMARY_HOST": gw.id, "REHEARSE_PRIMARY_PORT": strconv.Itoa(pgPort), "REHEARSE_SLOT": pgsql.SlotName(id),
			})
			if err != nil {
				return dep, fmt.Errorf("container: green reader: %w", err)
			}
			c.addOther(bg, n, false)
			if err := c.waitStreaming(ctx, gw, id); err != nil {
				return dep, err
			}
		}
	}
	c.nameGreen(bg)
	ok = true
	names := append([]string(nil), bg.Other.Order...)
	dep.Status = "AVAILABLE"
	dep.Detail["green_nodes"] = names
	dep.Detail["publication"], dep.Detail["subscription"] = bg.Rep.Name, bg.Rep.Name
	fmt.Fprintf(c.log, "blue/green deployment %s: green %v replicates %s from %s\n", bg.ID, names, Database, blue.id)
	return dep, nil
}

// readerNodes are the cluster's serving readers.
func (c *Cluster) readerNodes() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node
	for _, id := range c.order {
		if n := c.nodes[id]; id != c.writer && !n.down && !n.cut {
			out = append(out, n)
		}
	}
	return out
}

// addOther adds n to the deployment's other environment and names it.
func (c *Cluster) addOther(bg *blueGreen, n *node, writer bool) {
	c.mu.Lock()
	bg.Other.Add(n.id, n)
	if writer {
		bg.Other.Writer = n.id
	}
	c.mu.Unlock()
	c.name(n)
}

// copySchema restores blue's schema of the workload's database on green with this
// machine's pg_dump and pg_restore, through the containers' published addresses.
func (c *Cluster) copySchema(ctx context.Context, tools string, blue, green *node) error {
	dir, err := os.MkdirTemp("", "rehearse-bg-")
	if err != nil {
		return fmt.Errorf("container: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "schema.dump")
	list := file + ".list"
	run := func(program string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, dumpTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(tools, program), args...)
		cmd.Env = []string{"PATH=" + tools + ":/usr/bin:/bin", "LC_ALL=C"}
		cmd.Env = append(cmd.Env, c.cfg.Credentials.Env())
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("container: %s: %w: %s", program, err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	}
	if _, err := run("pg_dump", pgsql.DumpArgs(blue.hostIP.String(), blue.hostPort, Superuser, Database, file)...); err != nil {
		return err
	}
	toc, err := run("pg_restore", "-l", file)
	if err != nil {
		return err
	}
	if err := os.WriteFile(list, []byte(pgsql.RestoreList(toc)), 0o600); err != nil {
		return fmt.Errorf("container: %w", err)
	}
	_, err = run("pg_restore", "-L", list, "-h", green.hostIP.String(), "-p", strconv.Itoa(green.hostPort),
		"-U", Superuser, "-d", Database, "--no-password", "--exit-on-error", file)
	return err
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
		return gs, fmt.Errorf("container: %w", err)
	}
	return gs, nil
}

// deployment returns the deployment, switched over (switched) or not yet.
func (c *Cluster) deployment(switched bool) (*blueGreen, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bluegreen.Want("container", c.bg, switched)
}

// SwitchoverGreen implements migrate.BlueGreen as the local provider does: the
// database side is pgsql.Replication's; then the cluster's members swap, the
// instance names move (blue's get -old1) and the endpoints are released to green.
func (c *Cluster) SwitchoverGreen(ctx context.Context, timeout time.Duration) (migrate.BlueGreenSwitchover, error) {
	bg, err := c.deployment(false)
	if err != nil {
		return migrate.BlueGreenSwitchover{}, err
	}
	blue := c.writerNode()
	c.mu.Lock()
	green := bg.Other.Nodes[bg.Other.Writer]
	c.mu.Unlock()
	sw, err := bg.Rep.Switchover(ctx, timeout, pgsql.SwitchoverHooks{
		From: blue.id, To: green.id, Poll: 5 * time.Millisecond,
		Hold:    func(ctx context.Context) error { return c.eps.Hold(ctx) },
		Restore: func(ctx context.Context) error { return c.eps.Release(ctx, blue.addr(), c.readers()) },
		Commit:  func(ctx context.Context) (map[string]string, error) { return c.commitGreen(ctx, bg) },
	})
	if err != nil {
		return sw, fmt.Errorf("container: %w", err)
	}
	return sw, nil
}

// commitGreen makes green the cluster: it swaps the members, moves the names and
// releases the endpoints to green's writer.
func (c *Cluster) commitGreen(ctx context.Context, bg *blueGreen) (map[string]string, error) {
	c.mu.Lock()
	blue := bg.Swap(&c.nodes, &c.order, &c.writer)
	c.mu.Unlock()
	w := c.writerNode()
	// The endpoints first (dns: their records flip after the propagation delay, as
	// for any writer change), then the instance names.
	err := c.eps.Release(ctx, w.addr(), c.readers())
	renamed := c.renameForSwitchover(bg)
	fmt.Fprintf(c.log, "blue/green switchover: %s is the writer; the old blue %s is read-only\n", w.id, blue.Writer)
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
		c.dnsLabels[m.ID] = m.To
		n, ok := c.nodes[m.ID]
		if !ok {
			n = bg.Other.Nodes[m.ID]
		}
		hosts[m.ID] = n.hostIP
	}
	green := (&bluegreen.Members[*node]{Nodes: c.nodes, Order: c.order, Writer: c.writer}).Env(c.labelLocked)
	oldBlue := bg.Other.Env(c.labelLocked)
	c.mu.Unlock()
	return bg.Rename(c.cfg.DNS, c.log, moves, func(id string) netip.Addr { return hosts[id] }, green, oldBlue)
}

// KeepOldBlue implements migrate.BlueGreen: a read through the old blue's -old1
// cluster endpoint name reaches the old blue's writer, and a write is refused.
func (c *Cluster) KeepOldBlue(ctx context.Context) (map[string]any, error) {
	bg, err := c.deployment(true)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	ob := bg.Other.Nodes[bg.Other.Writer]
	c.mu.Unlock()
	name := bluegreen.ClusterNames(c.cfg.DNS, migrate.OldSuffix).Writer()
	cfg, err := pgx.ParseConfig(c.DSN(net.JoinHostPort(name, strconv.Itoa(ob.hostPort)), Database))
	if err != nil {
		return nil, err
	}
	cfg.LookupFunc = dnsserver.NewResolver(c.cfg.DNS.Addr()).LookupHost
	cfg.ConnectTimeout = 3 * time.Second
	d := map[string]any{"old_blue_writer": ob.id, "old_blue_endpoint": name}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return d, fmt.Errorf("container: the old blue: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var reached string
	if err := conn.QueryRow(ctx, "SELECT current_setting('cluster_name')").Scan(&reached); err != nil {
		return d, fmt.Errorf("container: a read on the old blue: %w", err)
	}
	if reached != ob.id {
		return d, fmt.Errorf("container: the old blue's name reaches %s, not %s", reached, ob.id)
	}
	_, werr := conn.Exec(ctx, "CREATE TEMP TABLE rehearse_write_probe (x int)")
	d["reads"] = "ok"
	d["writes_refused"] = werr != nil
	if werr == nil {
		return d, fmt.Errorf("container: the old blue %s took a write: it should be read-only", ob.id)
	}
	return d, nil
}

// DeleteDeployment implements migrate.BlueGreen: before the switchover it removes
// green and what the deployment created on blue; after it, the old blue's
// containers and names.
func (c *Cluster) DeleteDeployment(ctx context.Context) (map[string]any, error) {
	c.mu.Lock()
	bg := c.bg
	c.mu.Unlock()
	if bg == nil {
		return nil, errors.New("container: there is no blue/green deployment")
	}
	return c.deleteGreen(ctx, bg)
}

// deleteGreen removes the deployment's other environment, its names and the
// replication objects.
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
		errs = append(errs, bg.Rep.DropBlue(ctx))
	}
	var removed []string
	for _, n := range nodes {
		c.removeContainer(ctx, n.c)
		c.unname(n.id)
		removed = append(removed, n.id)
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

// dbQuery runs one query on node n's database db, in a session whose
// default_transaction_read_only is off.
func (c *Cluster) dbQuery(n *node, db string) pgsql.QueryRow {
	return func(ctx context.Context, sql string, args []any, dest ...any) error {
		conn, err := c.connectRW(ctx, n, db)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return conn.QueryRow(ctx, sql, args...).Scan(dest...)
	}
}

// dbExec runs statements on node n's database db, in a session whose
// default_transaction_read_only is off.
func (c *Cluster) dbExec(n *node, db string) pgsql.Exec {
	return func(ctx context.Context, sql string) error {
		conn, err := c.connectRW(ctx, n, db)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
}

func (c *Cluster) connectRW(ctx context.Context, n *node, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.DSN(n.addr(), db))
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 3 * time.Second
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	cfg.RuntimeParams["application_name"] = "rehearse-bluegreen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("container: connect to %s: %w", n.id, err)
	}
	return conn, nil
}
