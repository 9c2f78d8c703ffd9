package engine

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// verify is the step's integrity check. In a sharded run the others publish their
// acknowledged writes and leave the check to the coordinator, which first takes
// theirs into its workload's records, so its check covers every shard's writes.
func (r *Rehearsal) verifyStep(ctx context.Context) (result.Integrity, error) {
	sh := r.shard
	if sh == nil {
		return verify(ctx, r.wl, r.tgt)
	}
	if a, ok := r.wl.(interface{ Acknowledged() int64 }); ok {
		sh.mu.Lock()
		sh.acked = a.Acknowledged()
		sh.mu.Unlock()
	}
	oc, _ := r.wl.(workload.Outcomes)
	if !sh.cfg.Spec.Coordinator() {
		var data []byte
		if oc != nil {
			var err error
			if data, err = oc.ExportOutcomes(); err != nil {
				return result.Integrity{}, err
			}
		}
		if err := sh.member.Done(ctx, data, ""); err != nil {
			fmt.Fprintf(r.log, "warning: %v\n", err)
		} else {
			sh.mu.Lock()
			sh.done = true
			sh.mu.Unlock()
		}
		return result.Integrity{Checked: false, Details: []string{
			fmt.Sprintf("Checked by the coordinator (shard 0/%d), whose integrity check covers this shard's acknowledged writes.", sh.cfg.Spec.Count)}}, nil
	}
	lost, _ := sh.member.Collect(ctx, func(idx int, data []byte) error {
		if oc == nil {
			return nil
		}
		return oc.ImportOutcomes(data)
	})
	sh.mu.Lock()
	for _, l := range lost {
		sh.lost = append(sh.lost, result.LostShard{Index: l.Index, Reason: l.Reason})
	}
	sh.mu.Unlock()
	for _, l := range lost {
		fmt.Fprintf(r.log, "warning: shard %d/%d is missing from the integrity check: %s\n", l.Index, sh.cfg.Spec.Count, l.Reason)
	}
	integ, err := verify(ctx, r.wl, r.tgt)
	if err == nil && len(lost) > 0 {
		integ.Details = append(integ.Details, fmt.Sprintf("%d of %d shards' acknowledged writes are not covered: their shards did not finish (see shard.lost).", len(lost), sh.cfg.Spec.Count))
	}
	return integ, err
}

// finishResult records the shard in the step's result and writes what the merge
// reads besides it: the whole run's histograms, the availability series and the
// scenario file.
func (sh *sharding) finishResult(res *result.Result, rec *loadgen.Recorder, dir string) error {
	if sh == nil {
		return nil
	}
	spec := sh.cfg.Spec
	info := &result.ShardInfo{RunID: sh.member.RunID(), Index: spec.Index, Count: spec.Count, Seed: sh.cfg.Seed, SessionOffset: sh.cfg.Offset}
	for _, name := range []string{result.PhaseDuring, result.PhaseAfter} {
		if at, ok := rec.PhaseStart(name); ok {
			if info.Phases == nil {
				info.Phases = map[string]float64{}
			}
			info.Phases[name] = Round3(at.Seconds())
		}
	}
	sh.mu.Lock()
	info.Lost = append(info.Lost, sh.lost...)
	info.Stopped = sh.stopped
	info.AcknowledgedWrites = sh.acked
	sh.mu.Unlock()
	res.Shard = info
	if !spec.Coordinator() {
		// The coordinator ran the cutover and sampled the database; this shard
		// applied its marks. Its own samples (or its sampler's failures, through a
		// joined target) are no part of the run's record.
		res.Database = nil
		notes := res.Notes[:0]
		for _, n := range res.Notes {
			if !strings.HasPrefix(n, "The scenario has a cutover section, but target.dsn points at a database rehearse does not manage") {
				notes = append(notes, n)
			}
		}
		res.Notes = append(notes, fmt.Sprintf("Shard %d of %d: the coordinator (shard 0) ran the cutover, checked integrity and sampled the database; this shard ran load only, its phases marked as the coordinator marked them.", spec.Index, spec.Count))
	}
	if info.Stopped != "" {
		res.Notes = append(res.Notes, "This shard's load stopped before the coordinator said so: "+info.Stopped+".")
	}
	if len(info.Lost) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d shard(s) of %d did not finish; a merge of this run is incomplete.", len(info.Lost), spec.Count))
	}
	end := time.Duration(res.DurationS * float64(time.Second))
	for _, c := range rec.Cycles(end) {
		info.Cycles = append(info.Cycles, result.ShardCycle{Cycle: c.Cycle, Transactions: c.Transactions, Failed: c.Failed,
			Attempts: c.Attempts, FailedAttempts: c.FailedAttempts})
	}
	if err := writeHistograms(filepath.Join(dir, result.HistogramsFile), rec.Histograms(), res.StartedAt, res.StartedAt.Add(end)); err != nil {
		return err
	}
	if err := result.WriteFileAtomic(filepath.Join(dir, result.SeriesFile), func(w io.Writer) error {
		return result.WriteSeries(w, rec.Series())
	}); err != nil {
		return fmt.Errorf("writing %s: %w", result.SeriesFile, err)
	}
	if len(sh.cfg.Scenario) > 0 {
		if err := result.WriteFileAtomic(filepath.Join(dir, result.ScenarioFile), func(w io.Writer) error {
			_, err := w.Write(sh.cfg.Scenario)
			return err
		}); err != nil {
			return fmt.Errorf("writing %s: %w", result.ScenarioFile, err)
		}
	}
	return nil
}

// writeHistograms writes a run's whole histograms as an interval log of one
// interval, the run (see result.HistogramsFile for the tags).
func writeHistograms(path string, hs loadgen.RunHistograms, from, to time.Time) error {
	err := result.WriteFileAtomic(path, func(w io.Writer) error {
		hw, err := result.NewHlogWriter(w, from)
		if err != nil {
			return err
		}
		put := func(tag string, h *hdr.Histogram) error {
			if h == nil || h.TotalCount() == 0 {
				return nil
			}
			return hw.WriteInterval(tag, from, to, h)
		}
		if err := put(result.TagLag, hs.Lag); err != nil {
			return err
		}
		for _, o := range hs.Ops {
			op := hlogTag(o.Name)
			if err := put(result.TagLatency+":"+op, o.Latency); err != nil {
				return err
			}
			if err := put(result.TagService+":"+op, o.Service); err != nil {
				return err
			}
			for phase, h := range o.Phases {
				if err := put(phase+":"+op, h); err != nil {
					return err
				}
			}
		}
		for i, h := range hs.WindowLag {
			if err := put(fmt.Sprintf("window%d:%s", i, result.TagLag), h); err != nil {
				return err
			}
		}
		for i, w := range hs.Windows {
			for j, h := range w {
				if h != nil && j < len(hs.Ops) {
					if err := put(fmt.Sprintf("window%d:%s", i, hlogTag(hs.Ops[j].Name)), h); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", result.HistogramsFile, err)
	}
	return nil
}

// FillWindowRecovery sets each disruption window's recovery from the result's
// timeline, as a step does. The merge of a sharded run calls it on the merged
// result, so a window's recovery is the whole fleet's; the cutover's own record
// stays the coordinator's.
func FillWindowRecovery(res *result.Result) { fillWindowRecovery(res) }

// ShardVerdict adjusts a shard's own SLO verdict: a non-coordinator's writes are
// checked by the coordinator, so its own "integrity not checked" is no breach.
func ShardVerdict(res *result.Result) {
	if res.Shard == nil || res.Shard.Index == 0 {
		return
	}
	v := &res.SLO
	v.Passed = true
	for i := range v.Checks {
		c := &v.Checks[i]
		if !c.Passed && !res.Integrity.Checked && c.Reason == "integrity not checked" {
			c.Passed = true
			c.Reason = "checked by the coordinator (shard 0), whose integrity check covers this shard's writes"
		}
		v.Passed = v.Passed && c.Passed
	}
}

// ShardOutcome is how a shard's run ends. Its SLO verdict is on its share of the
// load alone, so it is not the run's: the merge's is (rehearse report merge). The
// coordinator fails when shards died or never finished, naming them.
func ShardOutcome(res *result.Result, dir string) error {
	if len(res.Shard.Lost) == 0 {
		return nil
	}
	var parts []string
	for _, l := range res.Shard.Lost {
		parts = append(parts, fmt.Sprintf("shard %d (%s)", l.Index, l.Reason))
	}
	return fmt.Errorf("%d of %d shards did not finish: %s; the coordinator's results are in %s, and a merge of the run is marked incomplete",
		len(res.Shard.Lost), res.Shard.Count, strings.Join(parts, "; "), dir)
}
