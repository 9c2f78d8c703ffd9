package emulator

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// CloudWatch speaks the Smithy RPC v2 CBOR protocol (aws-sdk-go-v2's
// service/cloudwatch since it left the Query protocol): POST
// /service/GraniteServiceVersion20100801/operation/NAME with a CBOR body, answered
// in CBOR with the Smithy-Protocol header; errors carry __type and message, and,
// the service being Query-compatible, the X-Amzn-Query-Error header with the
// Query protocol's code.
const (
	cloudWatchService = "GraniteServiceVersion20100801"
	cloudWatchPrefix  = "/service/" + cloudWatchService + "/operation/"
)

// cwError is a CloudWatch error answer.
type cwError struct {
	status         int
	typ, queryCode string
	msg            string
}

// serveCloudWatch answers one CloudWatch call: GetMetricData.
func (s *Server) serveCloudWatch(w http.ResponseWriter, r *http.Request) {
	start, began := s.opts.Now(), time.Now()
	op := strings.TrimPrefix(r.URL.Path, cloudWatchPrefix)
	body, err := s.cloudWatchCall(r, op)
	s.answerCBOR(w, op, start, began, body, err)
}

func (s *Server) cloudWatchCall(r *http.Request, op string) (cbor.Value, *cwError) {
	if !strings.HasPrefix(r.URL.Path, cloudWatchPrefix) || r.Method != http.MethodPost {
		return nil, &cwError{status: 404, typ: "UnknownOperationException", queryCode: "InvalidAction", msg: "the emulator serves CloudWatch at POST " + cloudWatchPrefix + "GetMetricData"}
	}
	if op != "GetMetricData" {
		return nil, &cwError{status: 400, typ: "UnknownOperationException", queryCode: "InvalidAction", msg: "the emulator does not implement CloudWatch " + op + " (it serves GetMetricData)"}
	}
	if slices.Contains(s.opts.Faults.Deny, op) {
		return nil, &cwError{status: 403, typ: "AccessDeniedException", queryCode: "AccessDenied",
			msg: fmt.Sprintf("User: arn:aws:iam::%s:user/rehearse is not authorized to perform: cloudwatch:%s because no identity-based policy allows the cloudwatch:%s action", Account, op, op)}
	}
	if e := s.injected(op); e != nil {
		// Query-compatible: __type names the exception, the header the Query code.
		typ, q := e.code, strings.TrimSuffix(e.code, "Exception")
		if !strings.HasSuffix(typ, "Exception") {
			typ += "Exception"
		}
		return nil, &cwError{status: e.status, typ: typ, queryCode: q, msg: e.msg}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return nil, &cwError{status: 400, typ: "SerializationException", queryCode: "MalformedInput", msg: "cannot read the request: " + err.Error()}
	}
	in, err := cbor.Decode(raw)
	if err != nil {
		return nil, &cwError{status: 400, typ: "SerializationException", queryCode: "MalformedInput", msg: "the request is not CBOR: " + err.Error()}
	}
	req, ok := in.(cbor.Map)
	if !ok {
		return nil, &cwError{status: 400, typ: "SerializationException", queryCode: "MalformedInput", msg: "the request is not a CBOR map"}
	}
	return s.getMetricData(req)
}

// metricQuery is one MetricDataQuery the emulator can answer: a metric of one
// instance.
type metricQuery struct {
	id, label, metric, instance, stat string
	period                            time.Duration
}

// getMetricData answers GetMetricData from the monitor's one-second datapoints,
// aggregated to each query's period (on period boundaries, as CloudWatch does).
func (s *Server) getMetricData(req cbor.Map) (cbor.Value, *cwError) {
	bad := func(format string, args ...any) *cwError {
		return &cwError{status: 400, typ: "InvalidParameterValueException", queryCode: "InvalidParameterValue", msg: fmt.Sprintf(format, args...)}
	}
	start, err1 := cbor.AsTime(req["StartTime"])
	end, err2 := cbor.AsTime(req["EndTime"])
	if err1 != nil || err2 != nil {
		return nil, &cwError{status: 400, typ: "MissingRequiredParameterException", queryCode: "MissingParameter", msg: "StartTime and EndTime are required"}
	}
	if !end.After(start) {
		return nil, bad("The parameter StartTime must be less than the parameter EndTime.")
	}
	list, _ := req["MetricDataQueries"].(cbor.List)
	if len(list) == 0 || len(list) > 500 {
		return nil, bad("MetricDataQueries must have between 1 and 500 queries (got %d)", len(list))
	}
	var queries []metricQuery
	for i, v := range list {
		q, ok := v.(cbor.Map)
		if !ok {
			return nil, bad("MetricDataQueries[%d] is not a structure", i)
		}
		mq := metricQuery{id: str(q["Id"]), label: str(q["Label"])}
		if mq.id == "" {
			return nil, bad("MetricDataQueries[%d].Id is required", i)
		}
		if _, expr := q["Expression"]; expr {
			return nil, bad("MetricDataQueries[%d]: the emulator answers MetricStat queries, not expressions", i)
		}
		ms, _ := q["MetricStat"].(cbor.Map)
		metric, _ := ms["Metric"].(cbor.Map)
		mq.metric, mq.stat = str(metric["MetricName"]), str(ms["Stat"])
		if ns := str(metric["Namespace"]); ns != "AWS/RDS" {
			mq.metric = "" // another namespace: the emulator has no data for it
		}
		dims, _ := metric["Dimensions"].(cbor.List)
		for _, d := range dims {
			if dm, ok := d.(cbor.Map); ok && str(dm["Name"]) == "DBInstanceIdentifier" {
				mq.instance = str(dm["Value"])
			}
		}
		p, err := cbor.AsInt64(ms["Period"])
		if err != nil || p <= 0 || (p < 60 && !slices.Contains([]int64{1, 5, 10, 20, 30}, p)) || (p >= 60 && p%60 != 0) {
			return nil, bad("MetricDataQueries[%d].MetricStat.Period must be 1, 5, 10, 20, 30 or a multiple of 60 (got %v)", i, ms["Period"])
		}
		mq.period = time.Duration(p) * time.Second
		if mq.label == "" {
			mq.label = mq.metric
		}
		queries = append(queries, mq)
	}
	ascending := str(req["ScanBy"]) == "TimestampAscending"
	results := make(cbor.List, 0, len(queries))
	for _, q := range queries {
		times, values := s.aggregate(q, start, end)
		if !ascending {
			slices.Reverse(times)
			slices.Reverse(values)
		}
		res := cbor.Map{
			"Id": cbor.String(q.id), "Label": cbor.String(q.label), "StatusCode": cbor.String("Complete"),
			"Timestamps": times, "Values": values, "Messages": cbor.List{},
		}
		if note, ok := metricNotes[q.metric]; ok {
			res["Messages"] = cbor.List{cbor.Map{"Code": cbor.String("Emulated"), "Value": cbor.String("Emulated by rehearse's RDS API emulator: " + note + ".")}}
		}
		results = append(results, res)
	}
	return cbor.Map{"MetricDataResults": results, "Messages": cbor.List{}}, nil
}

// aggregate computes a query's datapoints over [start, end): one per period with
// data, its time the period's start.
func (s *Server) aggregate(q metricQuery, start, end time.Time) (cbor.List, cbor.List) {
	times, values := cbor.List{}, cbor.List{}
	if s.mon == nil || q.metric == "" || q.instance == "" {
		return times, values
	}
	pts := s.mon.series(q.instance, q.metric, start, end)
	for i := 0; i < len(pts); {
		bucket := pts[i].at.Truncate(q.period)
		var vals []float64
		for ; i < len(pts) && pts[i].at.Truncate(q.period).Equal(bucket); i++ {
			vals = append(vals, pts[i].v)
		}
		times = append(times, &cbor.Tag{ID: 1, Value: cbor.Float64(float64(bucket.UnixMilli()) / 1e3)})
		values = append(values, cbor.Float64(statOf(q.stat, vals)))
	}
	return times, values
}

// statOf is CloudWatch's statistic of a period's values (Average by default).
func statOf(stat string, v []float64) float64 {
	switch stat {
	case "Maximum":
		return slices.Max(v)
	case "Minimum":
		return slices.Min(v)
	case "Sum":
		var sum float64
		for _, x := range v {
			sum += x
		}
		return sum
	case "SampleCount":
		return float64(len(v))
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return math.Round(sum/float64(len(v))*1e6) / 1e6
}

func str(v cbor.Value) string {
	if s, ok := v.(cbor.String); ok {
		return string(s)
	}
	return ""
}

// answerCBOR writes a CloudWatch answer and logs the call.
func (s *Server) answerCBOR(w http.ResponseWriter, op string, at, began time.Time, body cbor.Value, e *cwError) {
	s.mu.Lock()
	s.reqID++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.reqID)
	s.mu.Unlock()
	status, code := http.StatusOK, "OK"
	if e != nil {
		status, code = e.status, e.queryCode
		fault := "Sender"
		if e.status >= 500 {
			fault = "Receiver"
		}
		w.Header().Set("X-Amzn-Query-Error", e.queryCode+";"+fault)
		body = cbor.Map{"__type": cbor.String(e.typ), "message": cbor.String(e.msg)}
	}
	out := cbor.Encode(body)
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("X-Amzn-Requestid", id)
	w.WriteHeader(status)
	_, _ = w.Write(out)
	c := Call{Action: op, At: at, Status: status, Code: code, Duration: time.Since(began)}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	line := fmt.Sprintf("%s %s -> %d %s (%s)", at.UTC().Format("15:04:05.000"), orDash(op), status, code, c.Duration.Round(time.Microsecond))
	if e != nil {
		line += ": " + e.msg
	}
	fmt.Fprintln(s.opts.Log, line)
}
