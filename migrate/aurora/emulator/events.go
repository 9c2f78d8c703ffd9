package emulator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// xmlEvent is one event of a DescribeEvents answer.
type xmlEvent struct {
	SourceIdentifier string
	SourceType       string
	Message          string
	EventCategories  []string `xml:"EventCategories>EventCategory"`
	Date             string
	SourceArn        string
}

type xmlEvents struct {
	Events []xmlEvent `xml:"Events>Event"`
}

// describeEvents answers DescribeEvents from what the monitor saw: failovers
// started and completed, instances created and deleted. It filters by
// SourceType, SourceIdentifier, the time span (StartTime and EndTime, or Duration
// minutes; the last hour by default, as RDS) and EventCategories.
func (s *Server) describeEvents(f map[string][]string) (any, *apiError) {
	now := s.opts.Now()
	end := now.Add(time.Second)
	start := now.Add(-time.Hour)
	parse := func(k string) (time.Time, bool, *apiError) {
		v := first(f, k)
		if v == "" {
			return time.Time{}, false, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, false, fault(400, "InvalidParameterValue", "%s %q is not an ISO 8601 time", k, v)
		}
		return t, true, nil
	}
	if t, ok, e := parse("StartTime"); e != nil {
		return nil, e
	} else if ok {
		start = t
	}
	if t, ok, e := parse("EndTime"); e != nil {
		return nil, e
	} else if ok {
		end = t
	}
	if d := first(f, "Duration"); d != "" {
		m, err := strconv.Atoi(d)
		if err != nil || m < 0 {
			return nil, fault(400, "InvalidParameterValue", "Duration %q is not a number of minutes", d)
		}
		start = end.Add(-time.Duration(m) * time.Minute)
	}
	typ, src := first(f, "SourceType"), first(f, "SourceIdentifier")
	switch typ {
	case "", "db-cluster", "db-instance":
	default:
		typ = "none" // the emulator has events of clusters and instances only
	}
	if src != "" && typ == "" {
		return nil, fault(400, "InvalidParameterCombination", "SourceType must be given with SourceIdentifier")
	}
	var cats []string
	for i := 1; ; i++ {
		c := first(f, "EventCategories.EventCategory."+strconv.Itoa(i))
		if c == "" {
			c = first(f, "EventCategories.member."+strconv.Itoa(i))
		}
		if c == "" {
			break
		}
		cats = append(cats, c)
	}
	out := xmlEvents{Events: []xmlEvent{}}
	if s.mon == nil {
		return out, nil
	}
	for _, e := range s.mon.eventsIn(start, end) {
		if (typ != "" && e.sourceType != typ) || (src != "" && !strings.EqualFold(e.source, src)) {
			continue
		}
		if len(cats) > 0 && !slices.Contains(cats, e.category) {
			continue
		}
		kind := "db"
		if e.sourceType == "db-cluster" {
			kind = "cluster"
		}
		out.Events = append(out.Events, xmlEvent{
			SourceIdentifier: e.source, SourceType: e.sourceType, Message: e.message,
			EventCategories: []string{e.category}, Date: e.at.UTC().Format("2006-01-02T15:04:05.000Z"),
			SourceArn: fmt.Sprintf("arn:aws:rds:%s:%s:%s:%s", s.opts.Region, Account, kind, e.source),
		})
	}
	return out, nil
}
