package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
)

// Cutover targets (issue: cutover engine), measured on the smoke scenario.
const (
	proxyStallTargetMs = 1000.0
	dnsSlackMs         = 1000.0
)

// cutoverRun is one wet smoke rehearsal through one endpoint mode.
type cutoverRun struct {
	endpoint    string
	m           measured
	outcome     string
	steps       int
	stepsOK     int
	writerFrom  string
	writerTo    string
	tx, failed  int64
	writeMaxMs  float64
	readMaxMs   float64
	lost        int64
	promoteMs   float64
	stallMs     float64
	dnsMs       float64 // propagation delay + TTL: how long a client honouring the TTL may still reach the old writer
	lagBytes    int64
	errorsByCls map[string]int64
}

// cutover runs `rehearse run scenarios/smoke.yaml --mode wet --endpoint MODE`, which
// starts its own local cluster (fsync on) behind the endpoints.
func (b *bench) cutover(ctx context.Context, mode string) (cutoverRun, error) {
	out := filepath.Join(b.work, "rehearse-cutover-"+mode)
	m, err := runMeasured(ctx, b.root, b.log, b.s.rehearse, "run", "scenarios/smoke.yaml",
		"--mode", "wet", "--endpoint", mode, "--quiet", "--out", out)
	if err != nil {
		return cutoverRun{}, err
	}
	res, err := readResult(out, m)
	if err != nil {
		return cutoverRun{}, err
	}
	r := cutoverRun{endpoint: mode, m: m, tx: res.Totals.Transactions,
		failed: res.Totals.Failed + res.Totals.Ambiguous, writeMaxMs: res.Availability.WriteUnavailableMaxMs,
		readMaxMs: res.Availability.ReadUnavailableMaxMs, lost: res.Integrity.LostAcknowledgedWrites,
		dnsMs: 2000 + 5000, errorsByCls: map[string]int64{}}
	for _, e := range res.Errors {
		r.errorsByCls[e.Class] += e.Count
	}
	if mg := res.Migration; mg != nil {
		r.outcome, r.writerFrom, r.writerTo = mg.Outcome, mg.WriterBefore, mg.WriterAfter
		r.lagBytes = mg.LagAtPromotion.Bytes
		for _, s := range mg.Steps {
			r.steps++
			if s.Status == "ok" {
				r.stepsOK++
			}
			if s.Name == "switchover" {
				r.promoteMs, _ = s.Detail["promote_ms"].(float64)
				r.stallMs, _ = s.Detail["stall_ms"].(float64)
			}
		}
	}
	fmt.Fprintf(b.log, "cutover via %s: %s, %d/%d steps ok, %d failed, write stall %.0f ms, promote %.0f ms\n",
		mode, r.outcome, r.stepsOK, r.steps, r.failed, r.writeMaxMs, r.promoteMs)
	return r, nil
}

func (b *bench) renderCutoverTargets(w io.Writer) {
	for _, c := range b.cutovers {
		switch c.endpoint {
		case "proxy":
			fmt.Fprintf(w, "| planned switchover via proxy (smoke load): failed transactions | 0 | %d | %s |\n", c.failed, yes(c.failed == 0))
			fmt.Fprintf(w, "| planned switchover via proxy: max write stall | < 1 s | %.0f ms | %s |\n", c.writeMaxMs, yes(c.writeMaxMs < proxyStallTargetMs))
		case "dns":
			fmt.Fprintf(w, "| planned switchover via dns: write unavailability | ≤ DNS propagation + TTL (%.0f ms) + 1 s | %.0f ms | %s |\n", c.dnsMs, c.writeMaxMs, yes(c.writeMaxMs <= c.dnsMs+dnsSlackMs))
		}
		fmt.Fprintf(w, "| planned switchover via %s: lost acknowledged writes | 0 | %d | %s |\n", c.endpoint, c.lost, yes(c.lost == 0))
		fmt.Fprintf(w, "| pg_promote via %s | about 0.1 s | %.0f ms | (reported) |\n", c.endpoint, c.promoteMs)
	}
}

func (b *bench) renderCutovers(w io.Writer) {
	if len(b.cutovers) == 0 {
		return
	}
	fmt.Fprintf(w, "## Cutover under the smoke load\n\n")
	fmt.Fprintf(w, "`rehearse run scenarios/smoke.yaml --mode wet --endpoint MODE` (2,000 sessions, 400 actions/s, fsync on,\n")
	fmt.Fprintf(w, "its own local cluster). Unavailability is the longest span in which operations of a kind were attempted\n")
	fmt.Fprintf(w, "and none completed; the switchover's stall is what the provider measured from holding the endpoints\n")
	fmt.Fprintf(w, "to the promoted replica.\n\n")
	fmt.Fprintf(w, "| endpoint | outcome | steps ok | writer | transactions | failed | errors by class | write unavailable | read unavailable | lag at promotion | pg_promote | switchover stall | lost writes |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range b.cutovers {
		fmt.Fprintf(w, "| %s | %s | %d/%d | %s → %s | %d | %d | %v | %.0f ms | %.0f ms | %d bytes | %.0f ms | %.0f ms | %d |\n",
			c.endpoint, c.outcome, c.stepsOK, c.steps, c.writerFrom, c.writerTo, c.tx, c.failed, c.errorsByCls,
			c.writeMaxMs, c.readMaxMs, c.lagBytes, c.promoteMs, c.stallMs, c.lost)
	}
	fmt.Fprintln(w)
}
