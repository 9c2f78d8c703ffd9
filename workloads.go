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
		return banking.New(banking.Config{
			Customers: cfg.Customers, AccountsPerCustomer: cfg.AccountsPerCustomer,
			OpeningBalance: cfg.OpeningBalance, ActionsPerLogin: cfg.ActionsPerLogin, Mix: cfg.Mix,
		})
	case "tpcb":
		return tpcb.New(tpcb.Config{Scale: cfg.Scale}, false)
	case "tpcb-select":
		return tpcb.New(tpcb.Config{Scale: cfg.Scale}, true)
	}
	return nil, fmt.Errorf("unknown workload %q: use banking, tpcb or tpcb-select", cfg.Name)
}
