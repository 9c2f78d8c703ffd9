package engine

import (
	"fmt"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/banking"
	"github.com/rehearse-dev/rehearse/workload/tpcb"
)

// NewWorkload builds the workload a scenario names, sized by its workload section.
// A new workload goes in this switch (and in scenarios' list of names).
func NewWorkload(cfg scenarios.Workload) (workload.Workload, error) {
	switch cfg.Name {
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
	return nil, fmt.Errorf("%w: unknown workload %q: use banking, tpcb or tpcb-select", ErrInvalidInput, cfg.Name)
}

// activeSessions is implemented by workloads whose users can already be logged in
// when the run starts (banking).
type activeSessions interface{ SetActiveSessions(n int) }
