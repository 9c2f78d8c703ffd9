package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/banking"
	"github.com/rehearse-dev/rehearse/workload/replay"
	"github.com/rehearse-dev/rehearse/workload/script"
	"github.com/rehearse-dev/rehearse/workload/tpcb"
)

// NewWorkload builds the workload sc names, sized by its workload section; files it
// names are relative to the scenario file. A new workload goes in this switch (and
// in scenarios' list of names). A workload's own input problems (a script's syntax,
// a capture that is not a csvlog) wrap ErrInvalidInput.
func NewWorkload(ctx context.Context, sc *scenarios.Scenario) (workload.Workload, error) {
	cfg := sc.Workload
	switch cfg.Name {
	case scenarios.WorkloadReplay:
		w, err := replay.Open(ctx, replay.Config{Capture: relTo(sc, cfg.Capture), Speed: cfg.Speed, Seed: cfg.Seed,
			Filter: replay.Filter{Database: cfg.Filter.Database, User: cfg.Filter.User, Application: cfg.Filter.Application}})
		if errors.Is(err, replay.ErrInvalid) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		return w, err
	case scenarios.WorkloadScript:
		w, err := script.New(scriptConfig(sc))
		if errors.Is(err, script.ErrInvalid) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		return w, err
	case scenarios.WorkloadBanking:
		return banking.New(banking.Config{
			Customers: cfg.Customers, AccountsPerCustomer: cfg.AccountsPerCustomer,
			OpeningBalance: cfg.OpeningBalance, ActionsPerLogin: cfg.ActionsPerLogin, Mix: cfg.Mix,
		})
	case scenarios.WorkloadTPCB:
		return tpcb.New(tpcb.Config{Scale: cfg.Scale}, false)
	case scenarios.WorkloadTPCBSelect:
		return tpcb.New(tpcb.Config{Scale: cfg.Scale}, true)
	}
	return nil, fmt.Errorf("%w: unknown workload %q: use banking, tpcb, tpcb-select, script or replay", ErrInvalidInput, cfg.Name)
}

// activeSessions is implemented by workloads whose users can already be logged in
// when the run starts (banking).
type activeSessions interface{ SetActiveSessions(n int) }

// scriptConfig is the script workload's configuration from sc, its paths resolved
// against the scenario file's directory.
func scriptConfig(sc *scenarios.Scenario) script.Config {
	w := sc.Workload
	cfg := script.Config{Setup: relTo(sc, w.Setup), SetupCheck: w.SetupCheck, Scale: w.Scale, Seed: w.Seed}
	for _, f := range w.Scripts {
		cfg.Scripts = append(cfg.Scripts, script.ScriptFile{File: relTo(sc, f.File), Weight: f.Weight, Kind: f.Kind})
	}
	for _, in := range w.Invariants {
		cfg.Invariants = append(cfg.Invariants, script.Invariant{Name: in.Name, SQL: in.SQL, Expect: in.Expect})
	}
	if a := w.Acknowledged; a != nil {
		cfg.Acknowledged = &script.Acknowledged{Table: a.Table, Column: a.Column}
	}
	return cfg
}

// relTo resolves a path named in sc against the scenario file's directory.
func relTo(sc *scenarios.Scenario, path string) string {
	if path == "" || filepath.IsAbs(path) || sc.File == "" {
		return path
	}
	return filepath.Join(filepath.Dir(sc.File), path)
}

// baseliner is a workload that checks, after setup and before the load, what only
// the database can tell, and records what Verify compares with (a script
// workload's invariants and acknowledged column).
type baseliner interface {
	Baseline(ctx context.Context, pool *pgxpool.Pool) error
}

// workloadInput is a script workload's problems found in the database (ErrInvalid
// from Setup or Baseline) as input errors: each one about a field of the
// scenario's workload section is placed where the file writes it
// (file:line:col: workload.invariants[1].sql: ...); the others name their own
// place, a script or setup file and its line.
func workloadInput(sc *scenarios.Scenario, err error) error {
	fields, problems := script.Problems(err)
	if len(problems) == 0 {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	list := make([]scenarios.FieldError, len(problems))
	for i, msg := range problems {
		list[i] = scenarios.FieldError{Msg: msg}
		if fields[i] != "" {
			list[i] = sc.Problem("workload."+fields[i], msg)
		}
	}
	return fmt.Errorf("%w: %w", ErrInvalidInput, &scenarios.Errors{List: list})
}
