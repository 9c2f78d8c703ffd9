package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// apiError is an error answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func fault(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler: one Query API call, or one CloudWatch call
// in the RPC v2 CBOR protocol.
// maxRequestBody bounds a request's body.
const maxRequestBody = 1 << 20

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// No RDS or CloudWatch request the SDK sends comes near this.
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if strings.HasPrefix(r.URL.Path, "/service/") {
		s.serveCloudWatch(w, r)
		return
	}
	start := s.opts.Now()
	began := time.Now()
	if err := r.ParseForm(); err != nil {
		s.answer(w, "", start, began, nil, fault(400, "MalformedQueryString", "cannot parse the request: %v", err))
		return
	}
	action := r.Form.Get("Action")
	if v := r.Form.Get("Version"); v != "" && v != APIVersion {
		s.answer(w, action, start, began, nil, fault(400, "InvalidParameterValue", "unsupported API version %q; the emulator speaks %s", v, APIVersion))
		return
	}
	if e := s.injected(action); e != nil {
		s.answer(w, action, start, began, nil, e)
		return
	}
	var (
		body any
		err  *apiError
	)
	if body, err, ok := s.blueGreenCall(action, r.Form); ok {
		s.answer(w, action, start, began, body, err)
		return
	}
	switch action {
	case "DescribeDBClusters":
		body, err = s.describeClusters(r.Form)
	case "DescribeDBInstances":
		body, err = s.describeInstances(r.Form)
	case "ModifyDBCluster":
		body, err = s.modifyCluster(r.Form)
	case "CreateDBInstance":
		body, err = s.createInstance(r.Form)
	case "FailoverDBCluster":
		body, err = s.failover(r.Form)
	case "DeleteDBInstance":
		body, err = s.deleteInstance(r.Form)
	case "RebootDBInstance":
		body, err = s.rebootInstance(r.Form)
	case "DescribeEvents":
		body, err = s.describeEvents(r.Form)
	case "":
		err = fault(400, "MissingAction", "the request has no Action parameter")
	default:
		err = fault(400, "InvalidAction", "the emulator does not implement %s (it serves DescribeDBClusters, DescribeDBInstances, ModifyDBCluster, CreateDBInstance, FailoverDBCluster, DeleteDBInstance, RebootDBInstance, DescribeEvents, and CloudWatch's GetMetricData)", action)
	}
	s.answer(w, action, start, began, body, err)
}

// injected returns the fault Options inject for this call, if any.
func (s *Server) injected(action string) *apiError {
	for _, d := range s.opts.Faults.Deny {
		if d == action {
			return fault(403, "AccessDenied", "User: arn:aws:iam::%s:user/rehearse is not authorized to perform: rds:%s on resource: arn:aws:rds:%s:%s:cluster:%s because no identity-based policy allows the rds:%s action",
				Account, action, s.opts.Region, Account, s.opts.ClusterID, action)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.opts.Faults.Throttle[action]; s.throttled[action] < n {
		s.throttled[action]++
		return fault(400, "ThrottlingException", "Rate exceeded")
	}
	return nil
}

func (s *Server) answer(w http.ResponseWriter, action string, at time.Time, began time.Time, body any, e *apiError) {
	s.mu.Lock()
	s.reqID++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.reqID)
	s.mu.Unlock()
	status, code := http.StatusOK, "OK"
	var out []byte
	if e != nil {
		status, code = e.status, e.code
		out = errorXML(e, id)
	} else {
		out = resultXML(action, body, id)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", id)
	w.WriteHeader(status)
	_, _ = w.Write(out)
	c := Call{Action: action, At: at, Status: status, Code: code, Duration: time.Since(began)}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	line := fmt.Sprintf("%s %s -> %d %s (%s)", at.UTC().Format("15:04:05.000"), orDash(action), status, code, c.Duration.Round(time.Microsecond))
	if e != nil {
		line += ": " + e.msg
	}
	fmt.Fprintln(s.opts.Log, line)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *Server) checkCluster(f map[string][]string, required bool) *apiError {
	id := first(f, "DBClusterIdentifier")
	if id == "" && !required {
		return nil
	}
	if id == "" {
		return fault(400, "MissingParameter", "DBClusterIdentifier is required")
	}
	if !strings.EqualFold(id, s.opts.ClusterID) && !strings.HasSuffix(id, ":cluster:"+s.opts.ClusterID) {
		return fault(404, "DBClusterNotFoundFault", "DBCluster %s not found (this emulator hosts %s)", id, s.opts.ClusterID)
	}
	return nil
}

func first(f map[string][]string, k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
