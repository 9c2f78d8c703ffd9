package shard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Endpoints are how the load reaches a target the coordinator started on this
// machine (an embedded cluster, containers): its endpoints' DSNs and the DNS server
// that answers their names. The other shards
// on the machine read them from the rendezvous file; there is no database to
// coordinate through until the coordinator has started one.
type Endpoints struct {
	Kind         string `json:"kind"`
	EndpointMode string `json:"endpoint_mode"`
	Writer       string `json:"writer"`
	Reader       string `json:"reader"`
	DNSServer    string `json:"dns_server,omitempty"`
	// PID is the coordinator's process: a file whose process is gone is stale.
	PID   int    `json:"pid"`
	Count int    `json:"shards"`
	SHA   string `json:"scenario_sha256"`
}

// RendezvousPath is where the coordinator of a sharded run of the scenario named
// scenario publishes its target's endpoints in dir (the machine's temporary
// directory, shared by the shards' processes). The shard count and the file's
// digest are not in the name: a shard started with another count, or another
// version of the file, finds the coordinator and is refused (Check), as it would
// be by a coordinator in a database.
func RendezvousPath(dir, scenario string) string {
	if scenario == "" {
		scenario = "run"
	}
	return filepath.Join(dir, "rehearse-shards-"+scenario+".json")
}

// Check refuses a shard (spec, running the scenario file with digest sha) that is
// not of the run the coordinator published e for.
func (e Endpoints) Check(spec Spec, sha string) error {
	switch {
	case e.Count != spec.Count:
		return fmt.Errorf("%w: --shard %s: the coordinator on this machine (pid %d) runs %d shards, this shard %d: every shard of a run takes the same count", ErrRefused, spec, e.PID, e.Count, spec.Count)
	case e.SHA != sha:
		return fmt.Errorf("%w: --shard %s: the coordinator on this machine (pid %d) runs another version of the scenario file (sha256 %.12s…, this shard's %.12s…): every shard of a run runs the same file", ErrRefused, spec, e.PID, e.SHA, sha)
	}
	return nil
}

// Publish writes e to path for the other shards, and returns a function that
// removes it again. A file a live coordinator wrote is not replaced: that is a
// second shard 0 (ErrRefused).
func Publish(path string, e Endpoints) (remove func(), err error) {
	if old, err := readEndpoints(path); err == nil && old.PID != e.PID && alive(old.PID) {
		return nil, fmt.Errorf("%w: shard 0/%d: another coordinator (pid %d) already runs this scenario on this machine (%s): two shards with index 0", ErrRefused, e.Count, old.PID, path)
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, err
	}
	tmp := path + fmt.Sprintf(".%d.tmp", os.Getpid())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("publishing the target for the other shards: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("publishing the target for the other shards: %w", err)
	}
	return func() {
		if cur, err := readEndpoints(path); err == nil && cur.PID == e.PID {
			_ = os.Remove(path)
		}
	}, nil
}

// Await waits until a live coordinator has published its target's endpoints at
// path, or timeout passes (ErrBarrier).
func Await(ctx context.Context, path string, timeout time.Duration) (Endpoints, error) {
	deadline := time.Now().Add(timeout)
	for {
		e, err := readEndpoints(path)
		if err == nil && alive(e.PID) {
			return e, nil
		}
		if time.Now().After(deadline) {
			return Endpoints{}, fmt.Errorf("%w: the coordinator (shard 0) did not start its target within --barrier-timeout %v: start shard 0 of the run on this machine with the same scenario (it publishes its endpoints in %s)", ErrBarrier, timeout, path)
		}
		if err := sleep(ctx, waitPoll); err != nil {
			return Endpoints{}, err
		}
	}
}

func readEndpoints(path string) (Endpoints, error) {
	var e Endpoints
	b, err := os.ReadFile(path)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, err
	}
	return e, nil
}

// sleep waits d, or returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
