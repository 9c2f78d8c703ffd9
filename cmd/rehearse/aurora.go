package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/scenarios"
)

func newAuroraEmulatorCmd(s streams) *cobra.Command {
	var f struct {
		addr, clusterID, version, mode, stale, dir string
		fsync                                      bool
		maxConns                                   int
	}
	cmd := &cobra.Command{
		Use:   "aurora-emulator",
		Short: "Serve an RDS API stand-in over a real local PostgreSQL cluster, for offline Aurora rehearsals",
		Long: `aurora-emulator is a stand-in for AWS's RDS control plane, over real databases. It
starts a local PostgreSQL cluster (one writer) behind Aurora-like cluster endpoints and
serves the part of the RDS Query API that the aurora cutover uses — DescribeDBClusters,
DescribeDBInstances, ModifyDBCluster, CreateDBInstance, FailoverDBCluster and
DeleteDBInstance, and RebootDBInstance for crash faults — on --addr, so the
unmodified AWS SDK reaches it through --aws-endpoint-url. Every call is carried out
for real: CreateDBInstance runs pg_basebackup for a new replica (creating, then
backing-up, then available), FailoverDBCluster promotes it and flips the endpoints,
RebootDBInstance restarts an instance's server, and the Describe calls report
the real state.

Its databases admit only a password generated when it starts, kept in a 0600 file
in its work directory, which it prints the path of; a run as the same OS user
pointed at --addr finds that file by itself.

It is not AWS: it accepts any credentials and checks no signature or IAM policy, the
instances do not share storage (replicas stream WAL), Serverless v2 capacity is
recorded but not scaled, and write forwarding is emulated at the endpoints. It hosts
one cluster, prints its id and endpoints when it starts, logs one line per API call,
and stops (removing the cluster) on Ctrl-C.`,
		Example: `  rehearse aurora-emulator --addr 127.0.0.1:4566
  rehearse run scenarios/aurora.yaml --target aurora --mode wet --confirm rehearse-demo \
      --aws-endpoint-url http://127.0.0.1:4566`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			host, _, err := net.SplitHostPort(f.addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return usageError{fmt.Errorf("--addr %q: want a loopback host:port such as 127.0.0.1:4566 (the emulator accepts any credentials)", f.addr)}
			}
			if f.mode != endpoint.ModeDNS && f.mode != endpoint.ModeProxy {
				return usageError{fmt.Errorf("--endpoint %q: want dns or proxy", f.mode)}
			}
			stale, err := scenarios.ParseDuration(f.stale)
			if err != nil {
				return usageError{fmt.Errorf("--stale-dns-window: %w", err)}
			}
			ln, err := net.Listen("tcp", f.addr)
			if err != nil {
				return fmt.Errorf("aurora-emulator: listen on %s: %w", f.addr, err)
			}
			defer ln.Close()
			dir := f.dir
			if dir == "" {
				if dir, err = os.MkdirTemp("", "rehearse-aurora-emulator-"); err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				// The postgres OS user must reach it when rehearse runs as root.
				_ = os.Chmod(dir, 0o711)
			}
			if dir, err = filepath.Abs(dir); err != nil {
				return err
			}
			bin, err := local.FindBinaries(ctx, "")
			if err != nil {
				return err
			}
			fmt.Fprintf(s.err, "starting PostgreSQL %s for cluster %s in %s\n", bin.Version, f.clusterID, dir)
			b, err := emulator.StartLocal(ctx, emulator.LocalConfig{
				Node:         local.Config{Dir: dir, Bin: bin, Fsync: f.fsync, MaxConnections: f.maxConns, Log: s.err},
				EndpointMode: f.mode, Stale: staleOrNone(stale.D()), MaxClientConn: 2 * f.maxConns,
			})
			if err != nil {
				return err
			}
			defer func() {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if err := b.Close(cctx); err != nil {
					fmt.Fprintf(s.err, "warning: stopping the cluster: %v\n", err)
				}
			}()
			srv := emulator.New(b, emulator.Options{ClusterID: f.clusterID, EngineVersion: f.version, Log: s.out})
			defer srv.Close()
			if err := srv.SyncFunctions(ctx); err != nil {
				return err
			}
			url := "http://" + ln.Addr().String()
			// A run pointed at this URL (as this OS user) finds the databases'
			// password file there; the password itself is never printed.
			unpublish, err := emulator.PublishCredentials(url, b.Credentials().File())
			if err != nil {
				return err
			}
			defer unpublish()
			fmt.Fprintf(s.out, `aurora-emulator: a stand-in for AWS's RDS control plane, over real local PostgreSQL (not AWS)
cluster:         %s (%s %s, writer %s)
writer endpoint: %s
reader endpoint: %s
credentials:     %s (user %s; psql reads it with PGPASSFILE=%s; a run with --aws-endpoint-url %s finds it)
RDS API:         %s
run:             rehearse run scenarios/aurora.yaml --target aurora --mode wet --confirm %s --aws-endpoint-url %s
`, f.clusterID, emulator.Engine, f.version, srv.WriterInstance(), b.WriterEndpoint(), b.ReaderEndpoint(),
				b.Credentials().File(), b.Credentials().User(), b.Credentials().File(), url, url, f.clusterID, url)
			err = srv.Serve(ctx, ln)
			if errors.Is(ctx.Err(), context.Canceled) {
				fmt.Fprintln(s.err, "aurora-emulator: stopping")
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:4566", "loopback host:port the RDS API listens on")
	fl.StringVar(&f.clusterID, "cluster-id", emulator.DefaultClusterID, "the hosted cluster's DBClusterIdentifier")
	fl.StringVar(&f.version, "engine-version", emulator.DefaultEngineVersion, "reported aurora-postgresql version (local write forwarding needs 16.4+, 15.8+ or 14.13+)")
	fl.StringVar(&f.mode, "endpoint", endpoint.ModeDNS, "cluster endpoint emulation: dns | proxy")
	fl.StringVar(&f.stale, "stale-dns-window", "2s", "dns endpoints: how long new connections still reach the old writer after a failover")
	fl.StringVar(&f.dir, "dir", "", "work directory for the nodes (default: a temporary directory, removed on exit)")
	fl.BoolVar(&f.fsync, "fsync", true, "run the nodes with fsync on")
	fl.IntVar(&f.maxConns, "max-connections", 300, "each node's max_connections")
	return cmd
}

// staleOrNone maps an explicit 0 to "no stale window" (endpoint.Config's -1).
func staleOrNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
