package emulator

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// fuzzCalls bounds the requests one fuzz input makes, one per line.
const fuzzCalls = 8

// FuzzQueryAPI sends arbitrary Query API requests, one per line of the input (a
// form body, or with get the query string), to an emulator over a MemoryBackend,
// so that a sequence of calls walks the cluster through its states. Every answer
// is a well-formed XML document with HTTP 200, or an error answer with a 4xx
// status and an error code: never a panic, a hang or a server error.
func FuzzQueryAPI(f *testing.F) {
	for _, s := range []string{
		"Action=DescribeDBClusters&Version=2014-10-31&DBClusterIdentifier=rehearse-demo",
		"Action=DescribeDBInstances&Version=2014-10-31",
		"Action=ModifyDBCluster&Version=2014-10-31&DBClusterIdentifier=rehearse-demo&ServerlessV2ScalingConfiguration.MinCapacity=0.5&ServerlessV2ScalingConfiguration.MaxCapacity=8&ApplyImmediately=true\n" +
			"Action=CreateDBInstance&Version=2014-10-31&DBClusterIdentifier=rehearse-demo&DBInstanceIdentifier=sv2&DBInstanceClass=db.serverless&Engine=aurora-postgresql&PromotionTier=0\n" +
			"Action=DescribeDBInstances&Version=2014-10-31&DBInstanceIdentifier=sv2\n" +
			"Action=FailoverDBCluster&Version=2014-10-31&DBClusterIdentifier=rehearse-demo&TargetDBInstanceIdentifier=sv2\n" +
			"Action=DeleteDBInstance&Version=2014-10-31&DBInstanceIdentifier=rehearse-demo-instance-1\n" +
			"Action=DescribeEvents&Version=2014-10-31&SourceType=db-cluster&SourceIdentifier=rehearse-demo&Duration=60",
		"Action=ModifyDBCluster&DBClusterIdentifier=arn:aws:rds:us-east-1:000000000000:cluster:rehearse-demo&EnableLocalWriteForwarding=true",
		"Action=RebootDBInstance&DBInstanceIdentifier=rehearse-demo-instance-1&ForceFailover=true",
		"Action=DescribeEvents&StartTime=2026-03-01T12:00:00Z&EndTime=2026-03-01T13:00:00.5Z&EventCategories.member.1=failover",
		"Action=CreateBlueGreenDeployment&BlueGreenDeploymentName=upgrade&Source=arn:aws:rds:us-east-1:000000000000:cluster:rehearse-demo&TargetEngineVersion=16.4",
		"Action=SwitchoverBlueGreenDeployment&BlueGreenDeploymentIdentifier=bgd-1&SwitchoverTimeout=30",
		"Action=DescribeDBClusters&Version=2013-01-10",
		"Action=%zz", "Action=Describe%00DBClusters", "Action=<x>&DBClusterIdentifier=]]>", "", "&&&=;",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("Action=DescribeDBClusters&Version=2014-10-31"), true)
	f.Fuzz(func(t *testing.T, input []byte, get bool) {
		s := New(NewMemoryBackend(), Options{Now: fixedNow})
		defer s.Close()
		for i, line := range bytes.SplitN(input, []byte("\n"), fuzzCalls) {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(line))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if get {
				r = httptest.NewRequest(http.MethodGet, "/", nil)
				r.URL.RawQuery = string(line)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			checkXMLAnswer(t, i, w)
		}
	})
}

// fixedNow is a fixed clock: the answers of one input are the same every time.
func fixedNow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func checkXMLAnswer(t *testing.T, call int, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusOK && (w.Code < 400 || w.Code >= 500) {
		t.Fatalf("call %d: HTTP %d: %s", call, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/xml" {
		t.Fatalf("call %d: Content-Type %q", call, ct)
	}
	d := xml.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	var root string
	code := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("call %d: the answer is not well-formed XML: %v\n%s", call, err, w.Body)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			code = code || se.Name.Local == "Code"
		}
	}
	switch {
	case w.Code == http.StatusOK && !strings.HasSuffix(root, "Response"):
		t.Fatalf("call %d: an answer rooted at <%s>", call, root)
	case w.Code != http.StatusOK && (root != "ErrorResponse" || !code):
		t.Fatalf("call %d: an error answer (HTTP %d) without an error code:\n%s", call, w.Code, w.Body)
	}
}

// FuzzCloudWatch sends arbitrary request bodies to the emulator's CloudWatch
// GetMetricData (Smithy RPC v2 CBOR): every answer is a CBOR document with HTTP
// 200, or an error with a 4xx status and its __type: never a panic, a hang or a
// server error.
func FuzzCloudWatch(f *testing.F) {
	at := func(t time.Time) cbor.Value {
		return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.UnixMilli()) / 1e3)}
	}
	q := func(id, metric string, period cbor.Value) cbor.Map {
		return cbor.Map{"Id": cbor.String(id), "MetricStat": cbor.Map{
			"Metric": cbor.Map{"Namespace": cbor.String("AWS/RDS"), "MetricName": cbor.String(metric),
				"Dimensions": cbor.List{cbor.Map{"Name": cbor.String("DBInstanceIdentifier"), "Value": cbor.String("rehearse-demo-instance-1")}}},
			"Period": period, "Stat": cbor.String("Maximum")}}
	}
	now := fixedNow()
	for _, req := range []cbor.Map{
		{"StartTime": at(now.Add(-time.Minute)), "EndTime": at(now.Add(time.Minute)),
			"MetricDataQueries": cbor.List{q("a", "CPUUtilization", cbor.Uint(1)), q("b", "ServerlessDatabaseCapacity", cbor.Uint(60))}, "ScanBy": cbor.String("TimestampAscending")},
		{"StartTime": at(now), "EndTime": at(now.Add(-time.Second)), "MetricDataQueries": cbor.List{}},
		{"StartTime": cbor.Float64(0), "EndTime": cbor.Float64(1e18), "MetricDataQueries": cbor.List{q("c", "x", cbor.Uint(1<<62))}},
		{"StartTime": at(now), "EndTime": at(now.Add(time.Hour)), "MetricDataQueries": cbor.List{cbor.Map{"Id": cbor.String("e"), "Expression": cbor.String("SUM(x)")}}},
	} {
		f.Add(cbor.Encode(req))
	}
	for _, s := range []string{"", "\xa0", "\xbf\xff", "\x9f\x9f\x9f\x9f\xff", "\xc1\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := New(NewMemoryBackend(), Options{Now: fixedNow})
		defer s.Close()
		for i := range 3 {
			s.mon.record("rehearse-demo-instance-1", "CPUUtilization", now.Add(time.Duration(i-1)*time.Second), float64(10*i))
		}
		r := httptest.NewRequest(http.MethodPost, cloudWatchPrefix+"GetMetricData", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/cbor")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK && (w.Code < 400 || w.Code >= 500) {
			t.Fatalf("HTTP %d", w.Code)
		}
		v, err := cbor.Decode(w.Body.Bytes())
		if err != nil {
			t.Fatalf("the answer is not CBOR: %v", err)
		}
		m, ok := v.(cbor.Map)
		if !ok {
			t.Fatalf("the answer is a %T", v)
		}
		if _, ok := m["__type"]; w.Code != http.StatusOK && !ok {
			t.Fatalf("an error answer (HTTP %d) without __type: %v", w.Code, m)
		}
		if _, ok := m["MetricDataResults"]; w.Code == http.StatusOK && !ok {
			t.Fatalf("an answer without MetricDataResults: %v", m)
		}
	})
}
