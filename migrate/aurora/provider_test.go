package aurora

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
)

// fastConfig is a provider config with test-sized waits against url.
func fastConfig(url string) Config {
	return Config{
		ClusterID: emulator.DefaultClusterID, EndpointURL: url,
		WaiterMinDelay: 10 * time.Millisecond, WaiterMaxDelay: 50 * time.Millisecond,
		Poll: 10 * time.Millisecond, FailoverRetryDelay: 10 * time.Millisecond,
		RetryMaxBackoff: 20 * time.Millisecond,
		CreateTimeout:   10 * time.Second, DeleteTimeout: 10 * time.Second,
		FailoverTimeout: 10 * time.Second, ForwardingTimeout: 10 * time.Second,
	}
}

// memProvider is a provider against an emulator over a MemoryBackend.
func memProvider(t *testing.T, opts emulator.Options, tune func(*Config)) (*Provider, *emulator.Server) {
	t.Helper()
	s := emulator.New(emulator.NewMemoryBackend(), opts)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	cfg := fastConfig(hs.URL)
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

func TestCheckConfirm(t *testing.T) {
	tests := []struct {
		name, confirm string
		wet           bool
		strategy      string
		want          string
	}{
		{"dry needs none", "", false, "", ""},
		{"wet matching", "rehearse-demo", true, "", ""},
		{"wet missing", "", true, "in_cluster", `a wet run changes Aurora cluster "rehearse-demo" (it adds an instance, fails over onto it and deletes the old writer); pass --confirm rehearse-demo to proceed`},
		{"wet missing, blue/green", "", true, "blue_green", `a wet run changes Aurora cluster "rehearse-demo" (it creates a blue/green deployment, switches over to green`},
		{"wet mismatched", "prod-main", true, "", `--confirm "prod-main" does not match the target cluster "rehearse-demo"; nothing was changed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConfirm("rehearse-demo", tt.confirm, tt.wet, tt.strategy)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrConfirm) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrConfirm with %q", err, tt.want)
			}
		})
	}
}

func TestSupportsLocalWriteForwarding(t *testing.T) {
	for v, want := range map[string]bool{
		"16.4": true, "16.3": false, "16.6": true, "17.1": true, "15.8": true, "15.7": false,
		"15.10": true, "14.13": true, "14.12": false, "13.20": false, "": false, "x": false, "15.8.1": true,
	} {
		if got := SupportsLocalWriteForwarding(v); got != want {
			t.Errorf("%q: got %v, want %v", v, got, want)
		}
	}
}

func TestClusterIDFromDSN(t *testing.T) {
	tests := []struct {
		dsn, id string
		ok      bool
	}{
		{"postgres://app:secret@prod.cluster-abc123.eu-west-1.rds.amazonaws.com:5432/app", "prod", true},
		{"postgres://app@prod.cluster-ro-abc123.eu-west-1.rds.amazonaws.com/app", "prod", true},
		{"postgres://app@prod-instance-1.abc123.eu-west-1.rds.amazonaws.com/app", "", false},
		{"postgres://postgres@127.0.0.1:5432/rehearse", "", false},
	}
	for _, tt := range tests {
		id, ok := ClusterIDFromDSN(tt.dsn)
		if id != tt.id || ok != tt.ok {
			t.Errorf("%s: got %q %v", tt.dsn, id, ok)
		}
	}
	if id, err := ResolveClusterID("postgres://u@127.0.0.1/db", "demo"); id != "demo" || err != nil {
		t.Errorf("from confirm: %q %v", id, err)
	}
	if id, err := ResolveClusterID(tests[0].dsn, "other"); id != "prod" || err != nil {
		t.Errorf("from the DSN: %q %v", id, err)
	}
	if _, err := ResolveClusterID("", ""); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("neither: %v", err)
	}
	if r := Redact("postgres://app:secret@h/db"); strings.Contains(r, "secret") {
		t.Errorf("Redact kept the password: %s", r)
	}
}

func TestConfigValidate(t *testing.T) {
	errs := Config{MinACU: 4, MaxACU: 2, EndpointURL: "ftp://x"}.Validate()
	var msgs []string
	for _, e := range errs {
		if !errors.Is(e, ErrInvalidConfig) {
			t.Errorf("%v does not wrap ErrInvalidConfig", e)
		}
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"ClusterID is empty", "MinACU 4 and MaxACU 2", `EndpointURL "ftp://x"`} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}

func TestDescribeAndPreflight(t *testing.T) {
	var calls []Call
	var mu sync.Mutex
	p, _ := memProvider(t, emulator.Options{}, func(c *Config) {
		c.DSN = "postgres://app:s3cret@127.0.0.1:5432/rehearse?sslmode=disable"
		c.OnCall = func(cl Call) { mu.Lock(); calls = append(calls, cl); mu.Unlock() }
	})
	topo, err := p.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if topo.Writer != "rehearse-demo-instance-1" || topo.WriterEndpoint != "127.0.0.1:1" || topo.ReaderEndpoint != "127.0.0.1:2" || len(topo.Nodes) != 1 || topo.Nodes[0].Addr != "127.0.0.1:5432" {
		t.Errorf("topology: %+v", topo)
	}
	checks, err := p.Preflight(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]migrate.Check{}
	for _, c := range checks {
		byName[c.Name] = c
	}
	if c := byName["local write forwarding supported"]; !c.OK {
		t.Errorf("15.8: %+v", c)
	}
	// The DSN names the writer instance's own address: a warning.
	if c := byName["DSN names the cluster endpoint"]; c.OK || !c.Warning || !strings.Contains(c.Detail, "rehearse-demo-instance-1") {
		t.Errorf("DSN check: %+v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 4 || calls[0].Action != "DescribeDBClusters" || calls[1].Action != "DescribeDBInstances" || calls[0].Err != nil {
		t.Errorf("calls: %v", calls)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	p, s := memProvider(t, emulator.Options{EngineVersion: "15.4"}, nil)
	checks, err := p.Preflight(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range checks {
		if c.Name == "local write forwarding supported" {
			found = true
			want := "aurora-postgresql 15.4 has no local write forwarding: upgrade to Aurora PostgreSQL 16.4+, 15.8+ or 14.13+"
			if c.OK || c.Detail != want {
				t.Errorf("got %+v, want a failed check %q", c, want)
			}
		}
	}
	if !found {
		t.Fatal("no version check")
	}
	// The engine stops at preflight; the forwarding step refuses on its own too.
	e := &migrate.Engine{Provider: p, Config: migrate.Config{Poll: 10 * time.Millisecond}}
	_, err = e.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "preflight failed") || !strings.Contains(err.Error(), "15.4 has no local write forwarding") {
		t.Errorf("engine: %v", err)
	}
	if err := p.SetForwarding(t.Context(), true); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("SetForwarding: %v", err)
	}
	for _, a := range s.Actions() {
		if !strings.HasPrefix(a, "Describe") {
			t.Errorf("a failed preflight made a %s call", a)
		}
	}
}

func TestThrottlingRetried(t *testing.T) {
	p, s := memProvider(t, emulator.Options{Faults: emulator.Faults{Throttle: map[string]int{"DescribeDBClusters": 2}}}, nil)
	if _, err := p.Describe(t.Context()); err != nil {
		t.Fatalf("throttling should be retried by the SDK: %v", err)
	}
	c := p.Calls()[0]
	if c.Action != "DescribeDBClusters" || c.Attempts != 3 || c.Err != nil {
		t.Errorf("call: %+v", c)
	}
	if n := len(s.Calls()); n != 4 {
		t.Errorf("emulator saw %d calls, want 3 DescribeDBClusters + 1 DescribeDBInstances", n)
	}
}

func TestAccessDenied(t *testing.T) {
	tests := []struct {
		deny string
		run  func(ctx context.Context, p *Provider) error
	}{
		{"CreateDBInstance", func(ctx context.Context, p *Provider) error { _, err := p.CreateReplica(ctx); return err }},
		// The waiter's DescribeDBInstances: reported at once, not at the waiter's timeout.
		{"DescribeDBInstances", func(ctx context.Context, p *Provider) error { _, err := p.CreateReplica(ctx); return err }},
		{"FailoverDBCluster", func(ctx context.Context, p *Provider) error {
			if _, err := p.CreateReplica(ctx); err != nil {
				return err
			}
			_, err := p.Switchover(ctx, "rehearse-demo-serverless")
			return err
		}},
		{"DescribeDBClusters", func(ctx context.Context, p *Provider) error { _, err := p.Preflight(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.deny, func(t *testing.T) {
			p, _ := memProvider(t, emulator.Options{Faults: emulator.Faults{Deny: []string{tt.deny}}}, func(c *Config) { c.CreateTimeout = time.Minute })
			start := time.Now()
			err := tt.run(t.Context(), p)
			if !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("got %v, want ErrAccessDenied", err)
			}
			want := "rds:" + tt.deny + " is not allowed for this identity"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v\ndoes not say %q", err, want)
			}
			var pe *PermissionError
			if !errors.As(err, &pe) || pe.Action != "rds:"+tt.deny {
				t.Errorf("PermissionError: %+v", pe)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the denial took %v to surface", d)
			}
		})
	}
}

func TestFailoverInvalidState(t *testing.T) {
	t.Run("retried", func(t *testing.T) {
		p, s := memProvider(t, emulator.Options{Faults: emulator.Faults{FailoverStateFaults: 2}}, nil)
		if _, err := p.CreateReplica(t.Context()); err != nil {
			t.Fatal(err)
		}
		pr, err := p.Switchover(t.Context(), "rehearse-demo-serverless")
		if err != nil {
			t.Fatal(err)
		}
		if pr.From != "rehearse-demo-instance-1" || pr.To != "rehearse-demo-serverless" || pr.Detail["failover_attempts"] != 3 {
			t.Errorf("promotion: %+v", pr)
		}
		if s.WriterInstance() != "rehearse-demo-serverless" {
			t.Errorf("writer: %s", s.WriterInstance())
		}
	})
	t.Run("gives up", func(t *testing.T) {
		p, s := memProvider(t, emulator.Options{Faults: emulator.Faults{FailoverStateFaults: 100}}, func(c *Config) { c.FailoverRetries = 2 })
		if _, err := p.CreateReplica(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, err := p.Switchover(t.Context(), "rehearse-demo-serverless")
		want := "FailoverDBCluster rehearse-demo to rehearse-demo-serverless was refused 3 times (InvalidDBClusterStateFault: DB cluster rehearse-demo is not in a valid state for failover (injected fault)); the writer is still rehearse-demo-instance-1"
		if !errors.Is(err, ErrInvalidClusterState) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v\nwant %q", err, want)
		}
		if err := p.Recover(t.Context(), "rehearse-demo-instance-1"); err != nil {
			t.Errorf("Recover: %v", err)
		}
		if s.WriterInstance() != "rehearse-demo-instance-1" {
			t.Errorf("writer: %s", s.WriterInstance())
		}
	})
}

func TestWaiterTimeout(t *testing.T) {
	p, _ := memProvider(t, emulator.Options{Faults: emulator.Faults{NeverAvailable: true}}, func(c *Config) { c.CreateTimeout = 300 * time.Millisecond })
	_, err := p.CreateReplica(t.Context())
	want := `instance rehearse-demo-serverless was not available after 300ms (last status "creating"); it was left in place`
	if !errors.Is(err, ErrWaiterTimeout) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant %q", err, want)
	}
}

func TestCreateSetsScalingOnce(t *testing.T) {
	p, s := memProvider(t, emulator.Options{}, func(c *Config) { c.MinACU, c.MaxACU = 1, 8 })
	plan, err := p.PlanReplica(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if calls := plan["would_call"].([]string); len(calls) != 3 || !strings.Contains(calls[0], "MinCapacity=1, MaxCapacity=8") || !strings.Contains(calls[1], "DBInstanceClass=db.serverless") || !strings.Contains(calls[1], "PromotionTier=0") {
		t.Errorf("plan: %v", calls)
	}
	n, err := p.CreateReplica(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != "rehearse-demo-serverless" || n.Class != "db.serverless" || n.Tier != 0 {
		t.Errorf("node: %+v", n)
	}
	var mut []string
	for _, a := range s.Actions() {
		if !strings.HasPrefix(a, "Describe") {
			mut = append(mut, a)
		}
	}
	if strings.Join(mut, " ") != "ModifyDBCluster CreateDBInstance" {
		t.Errorf("mutating calls: %v", mut)
	}
	if _, err := p.PlanReplica(t.Context()); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("planning an existing instance: %v", err)
	}
}

func TestForwardingAndRemove(t *testing.T) {
	p, s := memProvider(t, emulator.Options{}, nil)
	ctx := t.Context()
	if err := p.SetForwarding(ctx, true); err != nil {
		t.Fatal(err)
	}
	if topo, _ := p.Describe(ctx); !topo.Forwarding {
		t.Error("forwarding not reported")
	}
	if _, err := p.CreateReplica(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Switchover(ctx, "rehearse-demo-serverless"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Rejoin(ctx, "rehearse-demo-instance-1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(ctx, "rehearse-demo-serverless"); err == nil || !strings.Contains(err.Error(), "it is the writer") {
		t.Errorf("removing the writer: %v", err)
	}
	if err := p.Remove(ctx, "rehearse-demo-instance-1"); err != nil {
		t.Fatal(err)
	}
	topo, err := p.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Nodes) != 1 || topo.Writer != "rehearse-demo-serverless" {
		t.Errorf("topology after decommission: %+v", topo)
	}
	_ = s
}

func TestNoCredentialsInLogs(t *testing.T) {
	log := &testutil.SyncBuffer{}
	p, s := memProvider(t, emulator.Options{Faults: emulator.Faults{Deny: []string{"CreateDBInstance"}}}, func(c *Config) {
		c.Log = log
		c.DSN = "postgres://app:hunter2-secret@prod.cluster-x.us-east-1.rds.amazonaws.com/app"
	})
	checks, _ := p.Preflight(t.Context())
	_, err := p.CreateReplica(t.Context())
	all := log.String() + err.Error()
	for _, c := range checks {
		all += c.Detail
	}
	for _, secret := range []string{"hunter2-secret", "rehearse-emulator"} {
		if strings.Contains(all, secret) {
			t.Errorf("%q appears in the logs:\n%s", secret, all)
		}
	}
	_ = s
}
