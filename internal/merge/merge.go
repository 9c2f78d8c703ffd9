// Package merge merges the shards of a sharded run (rehearse run --shard) into one
// result in the rehearse/result/v1 schema, exactly: percentiles come from the sum
// of the shards' histograms, never from their percentiles; the timeline is summed
// per second on the run's shared clock; unavailability windows are computed again
// from the sum of the shards' per-millisecond series; the cutover, the integrity
// check and the database's numbers are the coordinator's; the SLOs are evaluated
// on the merged numbers.
package merge

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// ErrMismatch is wrapped when the inputs are not shards of one run: another run,
// another scenario, another shard count, an index twice, or not a shard's result
// at all. The CLI exits 2.
var ErrMismatch = errors.New("not shards of one run")

// Shard is one shard's output directory, read.
type Shard struct {
	Dir    string
	Result *result.Result
}

// Merged is a merge's outcome: the result (SLO verdict included) and what
// writing the merged latency.hlog needs.
type Merged struct {
	Result *result.Result
	hlog   *hlogMerge
}

// Expand turns the arguments of `report merge` into shard directories: a
// directory holding a result.json is a shard's; one without holds shards'
// directories (every subdirectory with a result.json, but skip). Missing
// arguments and directories without any result are errors (ErrMismatch).
func Expand(args []string, skip string) ([]string, error) {
	var out []string
	skipAbs, _ := filepath.Abs(skip)
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMismatch, a, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%w: %s is not a directory: give each shard's output directory (or the directory holding them)", ErrMismatch, a)
		}
		if _, err := os.Stat(filepath.Join(a, resultFile)); err == nil {
			out = append(out, a)
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMismatch, a, err)
		}
		n := 0
		for _, e := range ents {
			d := filepath.Join(a, e.Name())
			if abs, _ := filepath.Abs(d); !e.IsDir() || abs == skipAbs {
				continue
			}
			if _, err := os.Stat(filepath.Join(d, resultFile)); err == nil {
				out = append(out, d)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: %s holds no %s, nor do its subdirectories: give the shards' output directories", ErrMismatch, a, resultFile)
		}
	}
	return out, nil
}

// Read reads each shard directory's result and checks that they are shards of one
// run (ErrMismatch): the same run id, scenario and shard count, each index once.
func Read(dirs []string) ([]Shard, error) {
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w: no shard directories given", ErrMismatch)
	}
	shards := make([]Shard, len(dirs))
	err := parallel(len(dirs), func(i int) error {
		d := dirs[i]
		res, err := result.ReadFile(filepath.Join(d, resultFile))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMismatch, err)
		}
		if res.Shard == nil {
			if res.Shards > 0 {
				return fmt.Errorf("%w: %s is already a merged result (%d shards): merge the shards' own directories", ErrMismatch, d, res.Shards)
			}
			return fmt.Errorf("%w: %s is not a shard's result: it was not run with --shard", ErrMismatch, d)
		}
		shards[i] = Shard{Dir: d, Result: res}
		return nil
	})
	if err != nil {
		return nil, err
	}
	first := shards[0].Result
	seen := map[int]string{}
	for _, s := range shards {
		r := s.Result
		switch {
		case r.Shard.RunID != first.Shard.RunID:
			return nil, fmt.Errorf("%w: %s is run %s, %s is run %s: merge the shards of one run", ErrMismatch, shards[0].Dir, first.Shard.RunID, s.Dir, r.Shard.RunID)
		case r.Scenario.SHA256 != first.Scenario.SHA256 || r.Scenario.Name != first.Scenario.Name:
			return nil, fmt.Errorf("%w: %s ran scenario %s, %s scenario %s (another file): merge the shards of one run", ErrMismatch, shards[0].Dir, first.Scenario.Name, s.Dir, r.Scenario.Name)
		case r.Shard.Count != first.Shard.Count:
			return nil, fmt.Errorf("%w: %s is a shard of %d, %s of %d: merge the shards of one run", ErrMismatch, shards[0].Dir, first.Shard.Count, s.Dir, r.Shard.Count)
		}
		if other, dup := seen[r.Shard.Index]; dup {
			return nil, fmt.Errorf("%w: %s and %s are both shard %d/%d", ErrMismatch, other, s.Dir, r.Shard.Index, r.Shard.Count)
		}
		seen[r.Shard.Index] = s.Dir
	}
	slices.SortFunc(shards, func(a, b Shard) int { return a.Result.Shard.Index - b.Result.Shard.Index })
	return shards, nil
}

// Merge merges shards (as Read returned them) into one result and evaluates the
// scenario's SLOs on it (the scenario file the coordinator copied to its output).
func Merge(shards []Shard) (*Merged, error) {
	if len(shards) == 0 {
		return nil, fmt.Errorf("%w: nothing to merge", ErrMismatch)
	}
	coord := shards[0].Result
	hasCoord := coord.Shard.Index == 0
	count := coord.Shard.Count
	res := cloneResult(coord)
	res.Shard = nil
	res.Shards = len(shards)
	res.Sharding = &result.Sharding{RunID: coord.Shard.RunID, Count: count, Merged: []int{}}
	present := map[int]bool{}
	for _, s := range shards {
		present[s.Result.Shard.Index] = true
		res.Sharding.Merged = append(res.Sharding.Merged, s.Result.Shard.Index)
	}
	lostWhy := map[int]string{}
	if hasCoord {
		for _, l := range coord.Shard.Lost {
			lostWhy[l.Index] = l.Reason
		}
	}
	for i := range count {
		switch {
		case !present[i]:
			why := "its result was not given to the merge"
			if w, ok := lostWhy[i]; ok {
				why = w
			}
			res.Sharding.Missing = append(res.Sharding.Missing, result.LostShard{Index: i, Reason: why})
		case lostWhy[i] != "":
			res.Sharding.Missing = append(res.Sharding.Missing, result.LostShard{Index: i, Reason: "its acknowledged writes are not in the coordinator's integrity check: " + lostWhy[i]})
		}
	}
	res.Incomplete = len(res.Sharding.Missing) > 0
	if !hasCoord {
		res.Migration = nil
		res.Database = nil
		res.Integrity = result.Integrity{Checked: false, Details: []string{"The coordinator's (shard 0) result is missing from the merge: it holds the integrity check and the cutover."}}
	}

	// The three reads are independent: run them at once.
	var hists histSet
	var series *result.AvailabilitySeries
	var hm *hlogMerge
	err := parallel(3, func(i int) error {
		var err error
		switch i {
		case 0:
			hm, err = mergeTimeline(res, shards)
		case 1:
			series, err = readSeries(shards)
		case 2:
			hists, err = readHistograms(shards)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	mergeLoad(res, shards, hists)
	res.Operations = mergeOperations(shards, hists)
	res.Errors = mergeErrors(shards)
	marks := disruptionMarks(coord)
	end := time.Duration(res.DurationS * float64(time.Second))
	var windowUnavail [][2]float64
	res.Availability, windowUnavail = loadgen.AvailabilityOf(series, end, marks)
	if coord.Availability.Cycles != nil {
		res.Availability.Cycles = coord.Availability.Cycles
	}
	res.PhaseWindows = mergeWindows(coord.PhaseWindows, shards, hists, windowUnavail)
	// Each window's recovery from the merged timeline. The cutover's record is the
	// coordinator's, but its cycles count every shard's operations.
	engine.FillWindowRecovery(res)
	if res.Migration != nil && len(res.Migration.Cycles) > 0 {
		m := *res.Migration
		m.Cycles = slices.Clone(m.Cycles)
		sums := mergeCycles(shards)
		for i := range m.Cycles {
			c := &m.Cycles[i]
			for _, cc := range sums {
				if cc.Cycle == c.Cycle {
					c.Transactions, c.Failed, c.Attempts, c.FailedAttempts = cc.Transactions, cc.Failed, cc.Attempts, cc.FailedAttempts
				}
			}
		}
		res.Migration = &m
	}
	if res.Client != nil {
		c := *res.Client
		c.AppInstances = 0
		for _, s := range shards {
			if s.Result.Client != nil {
				c.AppInstances += s.Result.Client.AppInstances
			}
		}
		res.Client = &c
	}
	res.Interrupted = false
	for _, s := range shards {
		res.Interrupted = res.Interrupted || s.Result.Interrupted
		if s.Result.Shard.Stopped != "" {
			res.Notes = append(res.Notes, fmt.Sprintf("Shard %d stopped early: %s.", s.Result.Shard.Index, s.Result.Shard.Stopped))
		}
	}
	res.Notes = append(res.Notes, mergeNote(res))
	sc, err := scenarioOf(shards)
	if err != nil {
		return nil, err
	}
	res.SLO = slo.Evaluate(res, sc.SLO)
	return &Merged{Result: res, hlog: hm}, nil
}

// mergeNote says what the result is.
func mergeNote(res *result.Result) string {
	n := fmt.Sprintf("Merged from %d of %d shards of run %s: latency percentiles from the sum of the shards' histograms, the timeline summed per second on the run's shared clock, unavailability windows computed from the sum of the shards' per-millisecond series; the cutover, integrity check and database numbers are the coordinator's (shard 0).",
		res.Shards, res.Sharding.Count, res.Sharding.RunID)
	if res.Incomplete {
		var m []string
		for _, l := range res.Sharding.Missing {
			m = append(m, fmt.Sprintf("shard %d (%s)", l.Index, l.Reason))
		}
		n += " Incomplete: " + strings.Join(m, "; ") + "."
	}
	return n
}

// scenarioOf is the scenario the shards ran, from the copy in the coordinator's (or
// any shard's) output; its digest must be the results'.
func scenarioOf(shards []Shard) (*scenarios.Scenario, error) {
	for _, s := range shards {
		b, err := os.ReadFile(filepath.Join(s.Dir, result.ScenarioFile))
		if err != nil {
			continue
		}
		sc, err := scenarios.Parse(filepath.Join(s.Dir, result.ScenarioFile), b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMismatch, s.Dir, err)
		}
		if sc.SHA256 != s.Result.Scenario.SHA256 {
			return nil, fmt.Errorf("%w: %s: %s is not the scenario the shard ran (sha256 %.12s…, the result's %.12s…)", ErrMismatch, s.Dir, result.ScenarioFile, sc.SHA256, s.Result.Scenario.SHA256)
		}
		return sc, nil
	}
	return nil, fmt.Errorf("%w: no shard directory holds %s (the scenario the run used), which the merge evaluates the SLOs with", ErrMismatch, result.ScenarioFile)
}

// cloneResult copies r deeply enough that the merge may change it.
func cloneResult(r *result.Result) *result.Result {
	var buf bytes.Buffer
	_ = result.Encode(&buf, r)
	c, err := result.Decode(&buf)
	if err != nil {
		cp := *r
		return &cp
	}
	return c
}

// histSet is the shards' whole-run histograms, summed: by tag.
type histSet map[string]*hdr.Histogram

func (h histSet) get(tag string) *hdr.Histogram {
	if x := h[tag]; x != nil {
		return x
	}
	return loadgen.NewHistogram()
}

// readHistograms sums every shard's whole-run histograms by tag.
func readHistograms(shards []Shard) (histSet, error) {
	out := histSet{}
	for _, s := range shards {
		f, err := os.Open(filepath.Join(s.Dir, result.HistogramsFile))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w (a shard writes it next to its result.json)", ErrMismatch, s.Dir, err)
		}
		err = result.ReadHlog(f, func(iv result.Interval) error {
			h := out[iv.Tag]
			if h == nil {
				h = loadgen.NewHistogram()
				out[iv.Tag] = h
			}
			return iv.Into(h)
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(s.Dir, result.HistogramsFile), err)
		}
	}
	return out, nil
}

func tag(kind, op string) string { return kind + ":" + hlogTag(op) }

// hlogTag is an operation's name as a log tag (as the engine writes it).
func hlogTag(op string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ',', ' ', '\n', '\r', '\t':
			return '_'
		}
		return r
	}, op)
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// mergeLoad sums the load: sessions, rates, arrivals, workers, totals; the lag
// from the summed lag histogram; the run's span from the earliest start to the
// latest end.
func mergeLoad(res *result.Result, shards []Shard, h histSet) {
	l := &res.Load
	l.Sessions, l.TargetRate, l.Arrivals, l.Workers = 0, 0, 0, 0
	l.ScheduleLagMaxMs = 0
	res.Totals = result.Totals{}
	res.DurationS = 0
	for _, s := range shards {
		r := s.Result
		l.Sessions += r.Load.Sessions
		l.TargetRate += r.Load.TargetRate
		l.Arrivals += r.Load.Arrivals
		l.Workers += r.Load.Workers
		l.ScheduleLagMaxMs = max(l.ScheduleLagMaxMs, r.Load.ScheduleLagMaxMs)
		t := &res.Totals
		t.Transactions += r.Totals.Transactions
		t.Succeeded += r.Totals.Succeeded
		t.Failed += r.Totals.Failed
		t.Ambiguous += r.Totals.Ambiguous
		t.Retries += r.Totals.Retries
		t.Attempts += r.Totals.Attempts
		t.FailedAttempts += r.Totals.FailedAttempts
		res.DurationS = max(res.DurationS, r.DurationS)
		if r.StartedAt.Before(res.StartedAt) {
			res.StartedAt = r.StartedAt
		}
		if r.EndedAt.After(res.EndedAt) {
			res.EndedAt = r.EndedAt
		}
	}
	l.TargetRate = round3(l.TargetRate)
	if lag := h[result.TagLag]; lag != nil && lag.TotalCount() > 0 {
		l.ScheduleLagP99Ms = loadgen.Ms(lag.ValueAtQuantile(99))
	}
	l.AchievedRate = 0
	if res.DurationS > 0 {
		l.AchievedRate = round3(float64(l.Arrivals) / res.DurationS)
	}
}

// mergeOperations sums each operation's counts across the shards and takes its
// latencies from the summed histograms.
func mergeOperations(shards []Shard, h histSet) []result.Operation {
	var names []string
	byName := map[string]*result.Operation{}
	for _, s := range shards {
		for _, o := range s.Result.Operations {
			m := byName[o.Name]
			if m == nil {
				m = &result.Operation{Name: o.Name, Kind: o.Kind, Phases: map[string]result.Phase{}}
				byName[o.Name] = m
				names = append(names, o.Name)
			}
			m.Count += o.Count
			m.Errors += o.Errors
			m.CapturedErrors += o.CapturedErrors
			m.Attempts.Retried += o.Attempts.Retried
			m.Attempts.Failed += o.Attempts.Failed
			m.Attempts.Max = max(m.Attempts.Max, o.Attempts.Max)
			for name, p := range o.Phases {
				q := m.Phases[name]
				q.Count += p.Count
				q.Errors += p.Errors
				q.FailedAttempts += p.FailedAttempts
				m.Phases[name] = q
			}
		}
	}
	out := make([]result.Operation, 0, len(names))
	for _, n := range names {
		o := byName[n]
		o.LatencyMs = loadgen.LatencyOf(h.get(tag(result.TagLatency, n)))
		o.ServiceMs = loadgen.ServiceOf(h.get(tag(result.TagService, n)))
		for name, p := range o.Phases {
			p.LatencyMs = loadgen.LatencyOf(h.get(tag(name, n)))
			o.Phases[name] = p
		}
		out = append(out, *o)
	}
	return out
}

// mergeErrors sums the error classes across the shards.
func mergeErrors(shards []Shard) []result.ErrorClass {
	type key struct{ class, state string }
	byKey := map[key]*result.ErrorClass{}
	var keys []key
	for _, s := range shards {
		for _, e := range s.Result.Errors {
			k := key{e.Class, e.SQLState}
			m := byKey[k]
			if m == nil {
				m = &result.ErrorClass{Class: e.Class, SQLState: e.SQLState, FirstS: e.FirstS, LastS: e.LastS, Example: e.Example}
				byKey[k] = m
				keys = append(keys, k)
			}
			m.Count += e.Count
			m.FirstS = min(m.FirstS, e.FirstS)
			m.LastS = max(m.LastS, e.LastS)
			for p, n := range e.Phases {
				if m.Phases == nil {
					m.Phases = map[string]int64{}
				}
				m.Phases[p] += n
			}
		}
	}
	out := make([]result.ErrorClass, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	slices.SortFunc(out, func(a, b result.ErrorClass) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Class, b.Class), cmp.Compare(a.SQLState, b.SQLState))
	})
	return out
}

// readSeries sums the shards' availability series.
func readSeries(shards []Shard) (*result.AvailabilitySeries, error) {
	sum := &result.AvailabilitySeries{}
	for _, s := range shards {
		f, err := os.Open(filepath.Join(s.Dir, result.SeriesFile))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w (a shard writes it next to its result.json)", ErrMismatch, s.Dir, err)
		}
		ser, err := result.ReadSeries(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(s.Dir, result.SeriesFile), err)
		}
		sum.Add(ser)
	}
	return sum, nil
}

// disruptionMarks are the coordinator's disruption windows, which set the phases
// every shard applied, from its phase windows.
func disruptionMarks(r *result.Result) loadgen.Marks {
	var m loadgen.Marks
	secs := func(s float64) time.Duration { return time.Duration(math.Round(s*1000)) * time.Millisecond }
	for _, w := range r.PhaseWindows {
		if w.Phase != result.PhaseDuring {
			continue
		}
		m.Disruptions = append(m.Disruptions, loadgen.DisruptionMark{Label: w.Label, Kind: w.Kind, Cycle: w.Cycle,
			Start: secs(w.StartS), End: secs(w.EndS), Ended: true})
	}
	if len(m.Disruptions) == 0 && r.Shard != nil {
		// A result without phase windows: the phases the shard recorded.
		d, ok1 := r.Shard.Phases[result.PhaseDuring]
		a, ok2 := r.Shard.Phases[result.PhaseAfter]
		if ok1 {
			dm := loadgen.DisruptionMark{Label: "cutover", Kind: result.DisruptionSwitchover, Start: secs(d)}
			if ok2 {
				dm.End, dm.Ended = secs(a), true
			}
			m.Disruptions = append(m.Disruptions, dm)
		}
	}
	return m
}

// mergeWindows sums the phase windows: the coordinator's windows (every shard
// applied the same marks), counts summed by window, latencies from the summed
// histograms, unavailability from the summed series.
func mergeWindows(coord []result.PhaseWindow, shards []Shard, h histSet, unavail [][2]float64) []result.PhaseWindow {
	if len(coord) == 0 {
		return coord
	}
	out := make([]result.PhaseWindow, len(coord))
	for i, w := range coord {
		m := w
		m.Count, m.Errors, m.FailedAttempts = 0, 0, 0
		m.Operations = map[string]result.Phase{}
		for _, s := range shards {
			if i >= len(s.Result.PhaseWindows) {
				continue
			}
			sw := s.Result.PhaseWindows[i]
			m.Count += sw.Count
			m.Errors += sw.Errors
			m.FailedAttempts += sw.FailedAttempts
			for op, p := range sw.Operations {
				q := m.Operations[op]
				q.Count += p.Count
				q.Errors += p.Errors
				q.FailedAttempts += p.FailedAttempts
				m.Operations[op] = q
			}
		}
		if lag := h[fmt.Sprintf("window%d:%s", i, result.TagLag)]; lag != nil && lag.TotalCount() > 0 {
			m.ScheduleLagP99Ms = loadgen.Ms(lag.ValueAtQuantile(99))
		}
		all := loadgen.NewHistogram()
		for op, p := range m.Operations {
			oh := h.get(tag(fmt.Sprintf("window%d", i), op))
			p.LatencyMs = loadgen.LatencyOf(oh)
			all.Merge(oh)
			m.Operations[op] = p
		}
		m.LatencyMs = loadgen.LatencyOf(all)
		if i < len(unavail) {
			m.WriteUnavailableMs, m.ReadUnavailableMs = unavail[i][0], unavail[i][1]
		}
		out[i] = m
	}
	return out
}

// Write writes the merged latency.hlog to w.
func (m *Merged) Write(w io.Writer) error { return m.hlog.write(w, m.Result.StartedAt) }

// parallel runs fn(0) … fn(n-1) on up to GOMAXPROCS goroutines and returns their
// errors joined.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(runtime.GOMAXPROCS(0), 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mergeCycles sums the shards' operations per cutover cycle.
func mergeCycles(shards []Shard) []loadgen.CycleCount {
	var out []loadgen.CycleCount
	at := map[int]int{}
	for _, s := range shards {
		for _, c := range s.Result.Shard.Cycles {
			i, ok := at[c.Cycle]
			if !ok {
				i = len(out)
				at[c.Cycle] = i
				out = append(out, loadgen.CycleCount{Cycle: c.Cycle})
			}
			o := &out[i]
			o.Transactions += c.Transactions
			o.Failed += c.Failed
			o.Attempts += c.Attempts
			o.FailedAttempts += c.FailedAttempts
		}
	}
	return out
}
