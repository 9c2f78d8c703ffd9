package telemetry

import (
	"fmt"
	"math"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Cost estimates what the rehearsed load costs per hour on Serverless v2 against
// the provisioned instance it replaces: the mean of writer's ACU series from when
// it became the writer (the whole run when it always was) times the price of an
// ACU-hour. When it cannot, it returns nil and says why.
func Cost(db *result.Database, writer string, price scenarios.Price) (*result.Cost, string) {
	if db == nil {
		return nil, "no cost estimate: no database series"
	}
	var acu *result.Series
	for i := range db.Series {
		if s := &db.Series[i]; s.Metric == "acu" && s.Node == writer {
			acu = s
		}
	}
	if acu == nil {
		return nil, fmt.Sprintf("no cost estimate: the writer %s has no ACU series (Serverless v2 capacity is reported for db.serverless instances)", orDash(writer))
	}
	from := 0.0
	for _, e := range db.Events {
		if e.Node == writer && e.Event == EventBecameWrite {
			from = e.TS
		}
	}
	var sum float64
	n := 0
	for _, p := range acu.Points {
		if p[0] >= from {
			sum += p[1]
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Sprintf("no cost estimate: no ACU datapoint of %s while it was the writer", writer)
	}
	mean := sum / float64(n)
	c := &result.Cost{
		ACUHour: price.ACUHour, ProvisionedHour: price.ProvisionedHour,
		MeanACU:            round3(mean),
		ServerlessPerHour:  math.Round(mean*price.ACUHour*100) / 100,
		ProvisionedPerHour: price.ProvisionedHour,
	}
	src := "measured by CloudWatch"
	if acu.Emulated {
		src = "estimated by the RDS API emulator from CPU and memory"
	}
	c.Note = fmt.Sprintf("An estimate from the rehearsal, not a quote: the mean capacity of %s while it was the writer (%.2f ACU over %d datapoints, %s) at $%g per ACU-hour, against $%g per hour for the provisioned instance. It prices the rehearsed load, not production's, and leaves out storage, I/O and backups.",
		writer, mean, n, src, price.ACUHour, price.ProvisionedHour)
	return c, ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
