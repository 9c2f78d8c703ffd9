package aurora

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
)

// MetricNames are the CloudWatch metrics (namespace AWS/RDS, dimension
// DBInstanceIdentifier) a Monitor fetches for each instance.
var MetricNames = []string{
	"CPUUtilization", "ServerlessDatabaseCapacity", "ACUUtilization", "DatabaseConnections",
	"AuroraReplicaLag", "ReadIOPS", "WriteIOPS", "FreeableMemory",
}

// MonitorActions are the IAM actions a Monitor calls: a run goes on without them,
// with the series or events they would have given named as missing.
var MonitorActions = []string{"cloudwatch:GetMetricData", "rds:DescribeEvents"}

const (
	// MetricsPeriod is the finest period RDS publishes its CloudWatch metrics at.
	MetricsPeriod = time.Minute
	// EmulatorMetricsPeriod is the emulator's finest period: it samples every second.
	EmulatorMetricsPeriod = time.Second
	// EmulatedCode is the Code of a MetricDataResult message that marks a series the
	// emulator derived rather than measured; its Value says how.
	EmulatedCode = "Emulated"
	// metricQueriesMax is GetMetricData's limit of queries per request.
	metricQueriesMax = 500
)

// Monitor reads what CloudWatch and RDS report about a cluster's instances: their
// metrics (GetMetricData) and events (DescribeEvents). Its calls are not part of
// the cutover's call log.
type Monitor struct {
	cw      *cloudwatch.Client
	rds     *rds.Client
	cluster string
	period  time.Duration
}

// Monitor returns a monitor of the provider's cluster, through the same
// configuration, credentials and endpoint (the emulator serves both APIs).
func (p *Provider) Monitor() *Monitor {
	url := p.cfg.EndpointURL
	m := &Monitor{cluster: p.cfg.ClusterID, period: MetricsPeriod}
	if url != "" && isLoopbackURL(url) {
		m.period = EmulatorMetricsPeriod
	}
	m.cw = cloudwatch.NewFromConfig(p.awsCfg, func(o *cloudwatch.Options) {
		if url != "" {
			o.BaseEndpoint = aws.String(url)
		}
	})
	m.rds = rds.NewFromConfig(p.awsCfg, func(o *rds.Options) {
		if url != "" {
			o.BaseEndpoint = aws.String(url)
		}
	})
	return m
}

// Period is the period the monitor asks CloudWatch for: the finest offered.
func (m *Monitor) Period() time.Duration { return m.period }

// Instances returns the cluster's writer and every member instance now
// (DescribeDBClusters).
func (m *Monitor) Instances(ctx context.Context) (writer string, ids []string, err error) {
	out, err := m.rds.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(m.cluster)})
	if err != nil {
		return "", nil, fmt.Errorf("aurora: describe cluster %s: %w", m.cluster, permissionError("DescribeDBClusters", err))
	}
	if len(out.DBClusters) == 0 {
		return "", nil, fmt.Errorf("%w: DB cluster %q", ErrNotFound, m.cluster)
	}
	c := out.DBClusters[0]
	for _, mem := range c.DBClusterMembers {
		ids = append(ids, aws.ToString(mem.DBInstanceIdentifier))
	}
	return writerOf(c), ids, nil
}

// InstanceMetric is one CloudWatch metric of one instance over a span.
type InstanceMetric struct {
	// Instance is the DBInstanceIdentifier, Metric the CloudWatch metric name.
	Instance, Metric string
	// Times and Values are the datapoints, oldest first, each the period's
	// average; a time is the start of its period.
	Times  []time.Time
	Values []float64
	// Emulated is true when the emulator derived the series; Note says how.
	Emulated bool
	Note     string
}

// Metrics fetches MetricNames for each instance over [start, end) at Period
// (GetMetricData). An AccessDenied answer is a *PermissionError for
// cloudwatch:GetMetricData.
func (m *Monitor) Metrics(ctx context.Context, instances []string, start, end time.Time) ([]InstanceMetric, error) {
	type key struct{ instance, metric string }
	var queries []cwtypes.MetricDataQuery
	byID := map[string]key{}
	for i, in := range instances {
		for j, name := range MetricNames {
			id := "m" + strconv.Itoa(i) + "_" + strconv.Itoa(j)
			byID[id] = key{in, name}
			queries = append(queries, cwtypes.MetricDataQuery{
				Id: aws.String(id),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{
						Namespace:  aws.String("AWS/RDS"),
						MetricName: aws.String(name),
						Dimensions: []cwtypes.Dimension{{Name: aws.String("DBInstanceIdentifier"), Value: aws.String(in)}},
					},
					Period: aws.Int32(int32(m.period / time.Second)),
					Stat:   aws.String("Average"),
				},
				ReturnData: aws.Bool(true),
			})
		}
	}
	// CloudWatch aligns datapoints to the period: widen the span to whole periods.
	start, end = start.Truncate(m.period), end.Truncate(m.period).Add(m.period)
	series := map[key]*InstanceMetric{}
	var order []key
	for lo := 0; lo < len(queries); lo += metricQueriesMax {
		in := &cloudwatch.GetMetricDataInput{
			MetricDataQueries: queries[lo:min(lo+metricQueriesMax, len(queries))],
			StartTime:         aws.Time(start), EndTime: aws.Time(end),
			ScanBy: cwtypes.ScanByTimestampAscending,
		}
		for p := cloudwatch.NewGetMetricDataPaginator(m.cw, in); p.HasMorePages(); {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("aurora: CloudWatch GetMetricData: %w", cloudWatchPermission(err))
			}
			for _, r := range out.MetricDataResults {
				k, ok := byID[aws.ToString(r.Id)]
				if !ok {
					continue
				}
				s := series[k]
				if s == nil {
					s = &InstanceMetric{Instance: k.instance, Metric: k.metric}
					series[k] = s
					order = append(order, k)
				}
				s.Times = append(s.Times, r.Timestamps...)
				s.Values = append(s.Values, r.Values...)
				for _, msg := range r.Messages {
					if aws.ToString(msg.Code) == EmulatedCode {
						s.Emulated, s.Note = true, aws.ToString(msg.Value)
					}
				}
			}
		}
	}
	out := make([]InstanceMetric, 0, len(order))
	for _, k := range order {
		out = append(out, *series[k])
	}
	return out, nil
}

// cloudWatchPermission names the IAM action of an AccessDenied answer.
func cloudWatchPermission(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized":
			return &PermissionError{Action: "cloudwatch:GetMetricData", Err: err}
		}
	}
	return err
}

// Event is something RDS reported about the cluster or one of its instances.
type Event struct {
	// Time is when it happened.
	Time time.Time
	// Source is the cluster or instance identifier, SourceType db-cluster or
	// db-instance.
	Source, SourceType string
	// Message is RDS's text ("Completed failover to DB instance: ...").
	Message string
	// Categories are RDS's event categories (failover, creation, deletion, ...).
	Categories []string
}

// Events returns the events RDS recorded for the cluster and for instances over
// [start, end) (DescribeEvents), oldest first. An AccessDenied answer is a
// *PermissionError for rds:DescribeEvents.
func (m *Monitor) Events(ctx context.Context, instances []string, start, end time.Time) ([]Event, error) {
	want := map[string]bool{}
	for _, in := range instances {
		want[in] = true
	}
	var out []Event
	for _, q := range []struct {
		typ types.SourceType
		id  *string
	}{{types.SourceTypeDbCluster, aws.String(m.cluster)}, {types.SourceTypeDbInstance, nil}} {
		in := &rds.DescribeEventsInput{SourceType: q.typ, SourceIdentifier: q.id, StartTime: aws.Time(start), EndTime: aws.Time(end)}
		for p := rds.NewDescribeEventsPaginator(m.rds, in); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				return out, fmt.Errorf("aurora: DescribeEvents: %w", permissionError("DescribeEvents", err))
			}
			for _, e := range page.Events {
				src := aws.ToString(e.SourceIdentifier)
				if q.typ == types.SourceTypeDbInstance && !want[src] {
					continue // another cluster's instance
				}
				out = append(out, Event{Time: aws.ToTime(e.Date), Source: src, SourceType: string(e.SourceType),
					Message: aws.ToString(e.Message), Categories: e.EventCategories})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out, nil
}
