package migrate

import (
	"context"
	"fmt"
)

// dry runs one step's read-only checks and says what it would do.
func (e *Engine) dry(ctx context.Context, name string, st *state, cfg Config) (map[string]any, error) {
	if cfg.Strategy == StrategyBlueGreen {
		return e.dryBlueGreen(ctx, name, st, cfg)
	}
	p := e.Provider
	action, check := describeStep(name, cfg, p.Kind())
	d := map[string]any{"would": action, "done_when": check}
	switch name {
	case StepPreflight:
		pd, err := e.preflight(ctx)
		for k, v := range pd {
			d[k] = v
		}
		return d, err
	case StepCreateReplica:
		pd, err := p.PlanReplica(ctx)
		for k, v := range pd {
			d[k] = v
		}
		return d, err
	case StepCatchUp:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		for _, n := range topo.Nodes {
			if n.ID == topo.Writer {
				continue
			}
			if lag, err := p.Lag(ctx, n.ID); err == nil {
				d["lag_bytes_"+n.ID] = lag.Bytes
			}
		}
	case StepForwardWrites:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		d["forwarding_now"] = topo.Forwarding
	case StepSwitchover, StepRedirect, StepValidate:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		d["writer_now"] = topo.Writer
		d["writer_endpoint"] = topo.WriterEndpoint
		if name == StepSwitchover && cfg.Kind == Crash {
			if _, ok := p.(Crasher); !ok {
				return d, fmt.Errorf("the %s provider cannot crash a node", p.Kind())
			}
		}
		if name == StepValidate && e.Validate != nil {
			vd, err := e.Validate(ctx)
			for k, v := range vd {
				d[k] = v
			}
			return d, err
		}
	}
	return d, nil
}
