package engine

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/rehearse-dev/rehearse/internal/faults"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// faultable is a target faults can strike: a Host acting on its nodes, and the
// fault proxies in front of them (nil when the scenario has no network fault).
type faultable interface {
	faultHost() faults.Host
	faultProxies() *faults.Proxies
}

// networkFaults are the kinds that act on a fault proxy.
var networkFaults = []string{scenarios.FaultBlackhole, scenarios.FaultLatency, scenarios.FaultReset}

// newProxies returns the fault proxies a target puts in front of its nodes when sc
// has a network fault; nil otherwise, so the default path has nothing in between.
func newProxies(sc *scenarios.Scenario, log io.Writer) *faults.Proxies {
	for _, f := range sc.Faults {
		if slices.Contains(networkFaults, f.Kind) {
			return faults.NewProxies(log)
		}
	}
	return nil
}

// via is px.Via, or nil without proxies (endpoint.Config.Via).
func via(px *faults.Proxies) func(string) string {
	if px == nil {
		return nil
	}
	return px.Via
}

// frontDNS makes srv answer each node's instance name with the address of the
// node's fault proxy: the nodes listen on port at addresses in the /24 of writer
// (host:port), as a cluster's Loopback hands them out.
func frontDNS(srv *dnsserver.Server, px *faults.Proxies, writer string) error {
	if px == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(writer)
	if err != nil {
		return fmt.Errorf("fault proxies in front of %s: %w", writer, err)
	}
	if _, err := px.Front(writer); err != nil {
		return err
	}
	srv.MapAnswers(px.AnswerFor(netip.PrefixFrom(ap.Addr(), 24).Masked(), int(ap.Port())))
	return nil
}

// proxyNote says how the fault proxies stand in the path.
const proxyNote = "Faults: a fault proxy (Shopify's toxiproxy, in rehearse's process) stands in front of each node on the path the load uses: on the node's host number in a /24 of 127.0.0.0/8 of its own, on the node's port; the nodes' instance names answer its address, PgBouncer and direct endpoints connect through it. Replication, pg_rewind and the integrity check reach the nodes directly. A blackhole holds every byte both ways until it ends (then they flow on, as TCP retransmits: nothing is dropped; the client's TCP keeps talking to the proxy, so only the operation timeout bounds a hang, not tcp_user_timeout); latency delays every reply; a reset closes every connection through the proxy at once."

// stepFaults are a step's faults: the injector, and whether it ran.
type stepFaults struct {
	inj     *faults.Injector
	proxies bool
}

// startFaults starts striking sc's faults on the step's clock, following cut's
// step events when there is a cutover; nil when sc has none, or when this process
// is a shard that does not run the target (the coordinator strikes them).
func (r *Rehearsal) startFaults(ctx context.Context, sc *scenarios.Scenario, dry bool, rec *loadgen.Recorder, cut *cutover, since func() time.Duration, tel *stepTelemetry) *stepFaults {
	if len(sc.Faults) == 0 || !r.setsUp() {
		return nil
	}
	cfg := faults.Config{Faults: sc.Faults, Recorder: rec, Since: since, Log: r.log,
		OnStrike: func(f scenarios.Fault) { tel.fault(f.Kind) }}
	ft, ok := r.tgt.(faultable)
	switch {
	case !ok:
		cfg.Skip = "the target is a database rehearse does not run (target.dsn): it cannot strike it"
	case dry && r.tgt.Kind() == scenarios.TargetAurora:
		cfg.Skip = "a dry run does not strike an Aurora cluster (a crash fails it over, or reboots an instance); run with --mode wet"
	default:
		cfg.Host, cfg.Proxies = ft.faultHost(), ft.faultProxies()
	}
	sf := &stepFaults{inj: faults.Start(ctx, cfg), proxies: cfg.Proxies != nil}
	if cut != nil {
		cut.listeners = append(cut.listeners, sf.inj.Event)
	}
	return sf
}

// stop undoes every fault still in effect; nil-safe and idempotent.
func (f *stepFaults) stop() {
	if f != nil {
		f.inj.Stop()
	}
}

// fill records the faults in res (after its phase windows' recovery is known).
func (f *stepFaults) fill(res *result.Result) {
	if f == nil {
		return
	}
	f.inj.Stop()
	res.Faults = f.inj.Results(res.PhaseWindows)
	if f.proxies {
		res.Notes = append(res.Notes, proxyNote)
	}
}
