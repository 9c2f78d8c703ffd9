package emulator

import (
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// cloudWatchClient is the unmodified CloudWatch client pointed at an emulator over
// a MemoryBackend.
func cloudWatchClient(t *testing.T, opts Options) (*cloudwatch.Client, *rds.Client, *Server) {
	t.Helper()
	s := New(NewMemoryBackend(), opts)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	retryer := retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 10 * time.Millisecond })
	cw := cloudwatch.New(cloudwatch.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL), Credentials: aws.AnonymousCredentials{}, Retryer: retryer})
	r := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL), Credentials: aws.AnonymousCredentials{}, Retryer: retryer})
	return cw, r, s
}

func query(id, metric, instance string, period int32, stat string) cwtypes.MetricDataQuery {
	return cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{
		Metric: &cwtypes.Metric{Namespace: aws.String("AWS/RDS"), MetricName: aws.String(metric),
			Dimensions: []cwtypes.Dimension{{Name: aws.String("DBInstanceIdentifier"), Value: aws.String(instance)}}},
		Period: aws.Int32(period), Stat: aws.String(stat)}}
}

// GetMetricData through the SDK: datapoints aggregated per period on period
// boundaries, in the order asked for, marked emulated; errors as CloudWatch's.
func TestGetMetricData(t *testing.T) {
	cw, _, s := cloudWatchClient(t, Options{})
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 12 {
		s.mon.record("rehearse-demo-instance-1", "CPUUtilization", base.Add(time.Duration(i)*time.Second), float64(10*i))
	}
	tests := []struct {
		name   string
		q      cwtypes.MetricDataQuery
		scan   cwtypes.ScanBy
		times  []time.Time
		values []float64
		note   bool
	}{
		{"one-second periods, ascending", query("a", "CPUUtilization", "rehearse-demo-instance-1", 1, "Average"), cwtypes.ScanByTimestampAscending,
			[]time.Time{base, base.Add(time.Second), base.Add(2 * time.Second)}, []float64{0, 10, 20}, true},
		{"five-second averages, newest first by default", query("b", "CPUUtilization", "rehearse-demo-instance-1", 5, "Average"), "",
			[]time.Time{base.Add(10 * time.Second), base.Add(5 * time.Second), base}, []float64{105, 70, 20}, true},
		{"maximum", query("c", "CPUUtilization", "rehearse-demo-instance-1", 5, "Maximum"), cwtypes.ScanByTimestampAscending,
			[]time.Time{base, base.Add(5 * time.Second), base.Add(10 * time.Second)}, []float64{40, 90, 110}, true},
		{"another instance has none", query("d", "CPUUtilization", "other", 1, "Average"), "", nil, nil, true},
		{"a metric the emulator does not derive", query("e", "NetworkThroughput", "rehearse-demo-instance-1", 1, "Average"), "", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := base.Add(12 * time.Second)
			if tt.name == "one-second periods, ascending" {
				end = base.Add(3 * time.Second)
			}
			out, err := cw.GetMetricData(t.Context(), &cloudwatch.GetMetricDataInput{
				StartTime: aws.Time(base), EndTime: aws.Time(end), MetricDataQueries: []cwtypes.MetricDataQuery{tt.q}, ScanBy: tt.scan})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.MetricDataResults) != 1 {
				t.Fatalf("%d results", len(out.MetricDataResults))
			}
			r := out.MetricDataResults[0]
			if aws.ToString(r.Id) != aws.ToString(tt.q.Id) || r.StatusCode != cwtypes.StatusCodeComplete {
				t.Errorf("result %s status %s", aws.ToString(r.Id), r.StatusCode)
			}
			if len(r.Timestamps) != len(tt.times) || !slices.Equal(r.Values, tt.values) && len(tt.values) > 0 {
				t.Fatalf("timestamps %v values %v, want %v %v", r.Timestamps, r.Values, tt.times, tt.values)
			}
			for i := range tt.times {
				if !r.Timestamps[i].Equal(tt.times[i]) {
					t.Errorf("timestamp %d: %v, want %v", i, r.Timestamps[i], tt.times[i])
				}
			}
			emulated := slices.ContainsFunc(r.Messages, func(m cwtypes.MessageData) bool {
				return aws.ToString(m.Code) == "Emulated" && strings.Contains(aws.ToString(m.Value), "emulator")
			})
			if emulated != tt.note {
				t.Errorf("emulated message %v, want %v: %+v", emulated, tt.note, r.Messages)
			}
		})
	}

	errs := []struct {
		name string
		in   *cloudwatch.GetMetricDataInput
		code string
	}{
		{"a period CloudWatch refuses", &cloudwatch.GetMetricDataInput{StartTime: aws.Time(base), EndTime: aws.Time(base.Add(time.Minute)),
			MetricDataQueries: []cwtypes.MetricDataQuery{query("a", "CPUUtilization", "x", 7, "Average")}}, "InvalidParameterValue"},
		{"the end before the start", &cloudwatch.GetMetricDataInput{StartTime: aws.Time(base), EndTime: aws.Time(base.Add(-time.Minute)),
			MetricDataQueries: []cwtypes.MetricDataQuery{query("a", "CPUUtilization", "x", 60, "Average")}}, "InvalidParameterValue"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cw.GetMetricData(t.Context(), tt.in)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
				t.Errorf("error %v, want code %s", err, tt.code)
			}
		})
	}
	_, err := cw.ListMetrics(t.Context(), &cloudwatch.ListMetricsInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || !strings.Contains(ae.ErrorMessage(), "does not implement CloudWatch ListMetrics") {
		t.Errorf("ListMetrics: %v", err)
	}
}

// DescribeEvents through the SDK after an instance was created and the cluster
// failed over to it, with its filters.
func TestDescribeEvents(t *testing.T) {
	_, c, s := cloudWatchClient(t, Options{})
	ctx := t.Context()
	start := time.Now().Add(-time.Second)
	id := aws.String("rehearse-demo")
	if _, err := c.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: id, ApplyImmediately: aws.Bool(true),
		ServerlessV2ScalingConfiguration: &types.ServerlessV2ScalingConfiguration{MinCapacity: aws.Float64(0.5), MaxCapacity: aws.Float64(8)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("sv2"), DBClusterIdentifier: id,
		DBInstanceClass: aws.String("db.serverless"), Engine: aws.String("aurora-postgresql")}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "sv2 to be available", func() bool {
		o, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("sv2")})
		return err == nil && aws.ToString(o.DBInstances[0].DBInstanceStatus) == "available"
	})
	if _, err := c.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: id, TargetDBInstanceIdentifier: aws.String("sv2")}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "sv2 to be the writer", func() bool { return s.WriterInstance() == "sv2" })
	all := func(in *rds.DescribeEventsInput) []string {
		var out []string
		testutil.Eventually(t, 10*time.Second, "the failover's completion among the events", func() bool {
			o, err := c.DescribeEvents(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			out = out[:0]
			for _, e := range o.Events {
				out = append(out, aws.ToString(e.SourceIdentifier)+": "+aws.ToString(e.Message))
			}
			return in.SourceType == types.SourceTypeDbInstance || slices.Contains(out, "rehearse-demo: Completed failover to DB instance: sv2")
		})
		return out
	}
	tests := []struct {
		name string
		in   *rds.DescribeEventsInput
		want []string
	}{
		{"every event", &rds.DescribeEventsInput{StartTime: aws.Time(start)}, []string{
			"sv2: Creating DB instance", "sv2: DB instance created",
			"rehearse-demo: Started cross AZ failover to DB instance: sv2", "rehearse-demo: Completed failover to DB instance: sv2",
			"rehearse-demo-instance-1: A new writer was promoted. Restarting database as a reader."}},
		{"the cluster's", &rds.DescribeEventsInput{SourceType: types.SourceTypeDbCluster, SourceIdentifier: id, StartTime: aws.Time(start)}, []string{
			"rehearse-demo: Started cross AZ failover to DB instance: sv2", "rehearse-demo: Completed failover to DB instance: sv2"}},
		{"creation only, in the last hour by default", &rds.DescribeEventsInput{SourceType: types.SourceTypeDbInstance, EventCategories: []string{"creation"}}, []string{
			"sv2: Creating DB instance", "sv2: DB instance created"}},
		{"before anything happened", &rds.DescribeEventsInput{SourceType: types.SourceTypeDbInstance, StartTime: aws.Time(start.Add(-time.Hour)), EndTime: aws.Time(start)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := all(tt.in); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
