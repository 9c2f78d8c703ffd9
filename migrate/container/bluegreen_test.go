package container_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
)

// TestBlueGreenContainers runs a blue/green deployment between containers over
// real logical replication, with a client inserting serial keys through the dns
// writer endpoint throughout: green copies blue, the switchover moves the names,
// green's keys continue past blue's, and nothing acknowledged is lost.
func TestBlueGreenContainers(t *testing.T) {
	image := requireDocker(t)
	testutil.RequireTool(t, "pg_dump", "the PostgreSQL client programs, Debian package postgresql-client")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startCluster(t, ctx, image, container.Config{
		ExtraConf: map[string]string{"wal_level": "logical"},
		Endpoint:  endpoint.Config{Mode: endpoint.ModeDNS, Propagation: 300 * time.Millisecond},
	})
	mode := endpoint.ExecMode(endpoint.ModeDNS)
	names := c.DNS().Names()
	conn := connect(t, ctx, c, c.WriterEndpoint(), mode)
	if _, err := conn.Exec(ctx, "CREATE TABLE orders (id bigserial PRIMARY KEY, pad text)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	checks, err := c.PreflightBlueGreen(ctx, migrate.GreenSpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range checks {
		if !ck.OK && !ck.Warning {
			t.Errorf("preflight %q blocks: %s", ck.Name, ck.Detail)
		}
	}

	w := writer{serial: true}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(lctx, c, mode) }()
	defer func() { stopLoad(); wg.Wait() }()
	acked := func(n int) func() bool { return func() bool { return len(w.ackedIDs()) >= n } }
	testutil.Eventually(t, time.Minute, "100 inserts before green exists", acked(100))

	dep, err := c.CreateGreen(ctx, migrate.GreenSpec{})
	if err != nil {
		t.Fatalf("CreateGreen: %v", err)
	}
	if !strings.HasPrefix(dep.GreenWriter, "node1-green-") {
		t.Errorf("deployment %+v", dep)
	}
	testutil.Eventually(t, time.Minute, "green to have copied every table and caught up", func() bool {
		gs, err := c.GreenSync(ctx)
		return err == nil && gs.Switchable && gs.Lag.Bytes < 1<<20
	})
	before := len(w.ackedIDs())
	testutil.Eventually(t, time.Minute, "100 more inserts while green replicates", acked(before+100))

	sw, err := c.SwitchoverGreen(ctx, 60*time.Second)
	if err != nil {
		t.Fatalf("SwitchoverGreen: %v", err)
	}
	if !sw.Switched || len(sw.Sequences) != 1 || sw.Sequences[0].Green < sw.Sequences[0].Blue {
		t.Errorf("switchover %+v", sw)
	}
	if got, err := writerName(ctx, c, mode); err != nil || got != dep.GreenWriter {
		t.Errorf("the writer endpoint reaches %q (%v), want green's %s", got, err, dep.GreenWriter)
	}
	if a := lookup(t, c, names.Instance("node1")); a.Addrs[0].String() != mustHost(t, c, dep.GreenWriter) {
		t.Errorf("node1's name answers %v, want green's address", a.Addrs)
	}
	before = len(w.ackedIDs())
	testutil.Eventually(t, time.Minute, "100 inserts on green", acked(before+100))
	stopLoad()
	wg.Wait()

	gconn := connect(t, ctx, c, c.WriterEndpoint(), mode)
	var have int64
	ids := w.ackedIDs()
	if err := gconn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id = ANY($1)", ids).Scan(&have); err != nil {
		t.Fatal(err)
	}
	if int(have) != len(ids) {
		t.Fatalf("%d of %d acknowledged inserts missing on green", len(ids)-int(have), len(ids))
	}
	t.Logf("%d inserts acknowledged, %d failed attempts; switchover %v, writes blocked %v", len(ids), w.fails, sw.Duration, sw.Stall)
	if d, err := c.KeepOldBlue(ctx); err != nil || d["writes_refused"] != true {
		t.Fatalf("KeepOldBlue: %v %v", d, err)
	}
	d, err := c.DeleteDeployment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if removed, _ := d["removed_old_blue"].([]string); len(removed) != 1 || removed[0] != "node1" {
		t.Errorf("DeleteDeployment %v", d)
	}
	if ids := c.NodeIDs(); len(ids) != 1 || ids[0] != dep.GreenWriter {
		t.Errorf("nodes after the deployment: %v", ids)
	}
}

func mustHost(t *testing.T, c *container.Cluster, id string) string {
	t.Helper()
	addr, err := c.NodeAddr(id)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(addr, ":")
	return host
}
