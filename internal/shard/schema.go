package shard

// Schema is the rehearse_run schema the shards of a run coordinate through, in the
// target database itself (the coordinator creates it, before the load and the
// cutover, so a copy of the database made during the cutover has it too).
//
//   - runs: one row per run, owned by its coordinator: its state, the agreed start
//     time, whether the load runs until the coordinator's stop (a cutover), and
//     that stop on the run's timeline;
//   - shards: one row per shard that registered: its index, the count it was
//     started with, where it runs, its state and a heartbeat counter;
//   - marks: the phase windows the coordinator's cutover (and its faults) opened
//     and closed, and its cycles, on the run's timeline;
//   - outcomes: each non-coordinator shard's acknowledged-write records, in chunks,
//     for the coordinator's integrity check.
//
// Every table has a primary key, so logical replication (a blue/green cutover)
// carries updates to them.
const Schema = `CREATE SCHEMA IF NOT EXISTS rehearse_run;
CREATE TABLE IF NOT EXISTS rehearse_run.runs (
  id text PRIMARY KEY,
  scenario text NOT NULL,
  scenario_sha256 text NOT NULL,
  shards int NOT NULL,
  state text NOT NULL,
  detail text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  start_at timestamptz,
  extends boolean NOT NULL DEFAULT false,
  stop_ns bigint
);
CREATE TABLE IF NOT EXISTS rehearse_run.shards (
  run_id text NOT NULL REFERENCES rehearse_run.runs (id) ON DELETE CASCADE,
  idx int NOT NULL,
  shards int NOT NULL,
  host text NOT NULL,
  pid int NOT NULL,
  sessions int NOT NULL,
  state text NOT NULL,
  detail text NOT NULL DEFAULT '',
  beats bigint NOT NULL DEFAULT 0,
  registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS rehearse_run.marks (
  run_id text NOT NULL REFERENCES rehearse_run.runs (id) ON DELETE CASCADE,
  kind text NOT NULL,
  seq int NOT NULL,
  label text NOT NULL DEFAULT '',
  disruption text NOT NULL DEFAULT '',
  cycle int NOT NULL DEFAULT 0,
  start_ns bigint NOT NULL,
  end_ns bigint,
  PRIMARY KEY (run_id, kind, seq)
);
CREATE TABLE IF NOT EXISTS rehearse_run.outcomes (
  run_id text NOT NULL REFERENCES rehearse_run.runs (id) ON DELETE CASCADE,
  idx int NOT NULL,
  chunk int NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (run_id, idx, chunk)
);`

// Run states (rehearse_run.runs.state).
const (
	runSetup     = "setup"     // the coordinator is setting the workload up
	runOpen      = "open"      // the coordinator waits at the barrier
	runStarted   = "started"   // start_at is set: the load runs
	runFinished  = "finished"  // the coordinator wrote its result
	runFailed    = "failed"    // the coordinator gave up (detail says why)
	runAbandoned = "abandoned" // a later coordinator found it without a live coordinator
)

// Shard states (rehearse_run.shards.state).
const (
	shardRegistered = "registered"
	shardReady      = "ready"   // sessions built, waiting for the start
	shardRunning    = "running" // the load runs
	shardDone       = "done"    // its outcomes are published
	shardFailed     = "failed"
)

// Kinds of marks (rehearse_run.marks.kind).
const (
	// MarkDisruption is a disruption window: a switchover, a failback, a fault.
	MarkDisruption = "disruption"
	// MarkCycle is the start of a cutover cycle's accounting span.
	MarkCycle = "cycle"
)
