package emulator

import (
	"bytes"
	"encoding/xml"
)

// The response shapes of the RDS Query API (2014-10-31), as aws-sdk-go-v2's
// service/rds deserializers read them: <ActionResponse><ActionResult>...</ActionResult>
// <ResponseMetadata><RequestId>, lists as <DBClusters><DBCluster>, and errors as
// <ErrorResponse><Error><Type><Code><Message></Error><RequestId>.

const xmlns = "http://rds.amazonaws.com/doc/2014-10-31/"

type xmlScaling struct {
	MinCapacity float64
	MaxCapacity float64
}

type xmlMember struct {
	DBInstanceIdentifier          string
	IsClusterWriter               bool
	DBClusterParameterGroupStatus string
	PromotionTier                 int
}

type xmlCluster struct {
	DBClusterIdentifier        string
	DBClusterArn               string
	Status                     string
	Engine                     string
	EngineVersion              string
	EngineMode                 string
	Endpoint                   string
	ReaderEndpoint             string
	Port                       int
	MultiAZ                    bool
	Members                    []xmlMember `xml:"DBClusterMembers>DBClusterMember"`
	Scaling                    *xmlScaling `xml:"ServerlessV2ScalingConfiguration,omitempty"`
	LocalWriteForwardingStatus string      `xml:",omitempty"`
}

type xmlEndpoint struct {
	Address string
	Port    int
}

type xmlInstance struct {
	DBInstanceIdentifier string
	DBInstanceArn        string
	DBInstanceClass      string
	Engine               string
	EngineVersion        string
	DBInstanceStatus     string
	DBClusterIdentifier  string
	Endpoint             *xmlEndpoint `xml:",omitempty"`
	PromotionTier        int
	InstanceCreateTime   string
}

type xmlClusters struct {
	Clusters []xmlCluster `xml:"DBClusters>DBCluster"`
}

type xmlInstances struct {
	Instances []xmlInstance `xml:"DBInstances>DBInstance"`
}

type xmlClusterResult struct {
	Cluster xmlCluster `xml:"DBCluster"`
}

type xmlInstanceResult struct {
	Instance xmlInstance `xml:"DBInstance"`
}

// resultXML renders a successful answer: <ActionResponse><ActionResult>body...
func resultXML(action string, body any, requestID string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString("<" + action + "Response xmlns=\"" + xmlns + "\">\n  <" + action + "Result>")
	inner, err := xml.MarshalIndent(body, "    ", "  ")
	if err == nil {
		// Drop the outer element of the marshalled struct: its fields are the result's.
		inner = stripOuter(inner)
		b.Write(inner)
	}
	b.WriteString("\n  </" + action + "Result>\n  <ResponseMetadata>\n    <RequestId>")
	_ = xml.EscapeText(&b, []byte(requestID))
	b.WriteString("</RequestId>\n  </ResponseMetadata>\n</" + action + "Response>\n")
	return b.Bytes()
}

// stripOuter removes the first start tag and the last end tag of a marshalled element.
func stripOuter(x []byte) []byte {
	i := bytes.IndexByte(x, '>')
	j := bytes.LastIndex(x, []byte("</"))
	if i < 0 || j < i {
		return x
	}
	return x[i+1 : j]
}

// errorXML renders an error answer.
func errorXML(e *apiError, requestID string) []byte {
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	type xmlError struct {
		Type    string
		Code    string
		Message string
	}
	type errorResponse struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		Error     xmlError
		RequestID string `xml:"RequestId"`
	}
	out, _ := xml.MarshalIndent(errorResponse{Xmlns: xmlns, Error: xmlError{typ, e.code, e.msg}, RequestID: requestID}, "", "  ")
	return append([]byte(xml.Header), out...)
}
