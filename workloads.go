package rehearse

import (
	"fmt"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/banking"
	"github.com/rehearse-dev/rehearse/workload/tpcb"
)

// newWorkload builds the workload a scenario names.
func newWorkload(cfg scenarios.Workload) (workload.Workload, error) {
	switch cfg.Name {
	case "banking":
		return banking.New(cfg)
	case "tpcb":
		return tpcb.New(cfg, false)
	case "tpcb-select":
		return tpcb.New(cfg, true)
	}
	return nil, fmt.Errorf("unknown workload %q: use banking, tpcb or tpcb-select", cfg.Name)
}
