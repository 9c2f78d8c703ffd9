package report

import (
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// The first screen has the faults' recovery next to the cutover's when the run
// injected faults.
func TestFaultRecoveryCard(t *testing.T) {
	f := func(v float64, ok bool) result.Fault {
		return result.Fault{Kind: "freeze", RecoveryS: &v, Recovered: ok}
	}
	tests := []struct {
		name   string
		faults []result.Fault
		want   card
		shown  bool
	}{
		{"no faults", nil, card{}, false},
		{"a fault without a recovery", []result.Fault{{Kind: "reset"}}, card{}, false},
		{"one", []result.Fault{f(1.25, true)}, card{"Recovery after the faults", "1.2 s max of 1 fault", false}, true},
		{"the longest of three", []result.Fault{f(0.5, true), f(3.5, true), {Kind: "reset"}, f(2, true)}, card{"Recovery after the faults", "3.5 s max of 3 faults", false}, true},
		{"one never recovered", []result.Fault{f(0.5, true), f(9, false)}, card{"Recovery after the faults", "not by the end (9.0 s max of 2 faults)", true}, true},
	}
	for _, tt := range tests {
		got, shown := faultRecoveryCard(tt.faults)
		if got != tt.want || shown != tt.shown {
			t.Errorf("%s: %+v %v, want %+v %v", tt.name, got, shown, tt.want, tt.shown)
		}
	}
}
