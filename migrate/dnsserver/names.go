package dnsserver

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// Naming defaults.
const (
	// DefaultZone is the zone the server is authoritative for: a name under the
	// .internal top-level domain, which is reserved for private use and never
	// delegated, so no name of it can leak to or collide with the public DNS.
	DefaultZone = "rehearse.internal"
	// DefaultCluster is the cluster label when Names.Cluster is empty.
	DefaultCluster = "rehearse"
	// idLength is the length of a generated cluster ID, as long as Aurora's.
	idLength = 12
)

// Names are the DNS names of one cluster, shaped like Aurora's so a reader
// recognises them:
//
//	<cluster>.cluster-<id>.<zone>                  the cluster (writer) endpoint
//	<cluster>.cluster-ro-<id>.<zone>               the reader endpoint
//	<node>.<id>.<zone>                             an instance's own endpoint
//	<cluster>.proxy-<id>.<zone>                    the writer PgBouncer (RDS Proxy's default endpoint)
//	<cluster>-ro.endpoint.proxy-<id>.<zone>        the reader PgBouncer (a read-only proxy endpoint)
//
// Names are returned without the trailing dot, as a DSN or dig takes them.
type Names struct {
	// Zone is the zone, DefaultZone when empty.
	Zone string
	// Cluster is the cluster's label, DefaultCluster when empty.
	Cluster string
	// ID stands for the account and region part of Aurora's names; one per cluster,
	// so two runs' names differ. Empty: Start generates one.
	ID string
}

// NewNames returns the names of a cluster labelled cluster (any text: it is made a
// DNS label, DefaultCluster when nothing is left) with a fresh random ID, in
// DefaultZone.
func NewNames(cluster string) Names {
	return Names{Zone: DefaultZone, Cluster: Label(cluster), ID: newID()}
}

// withDefaults fills empty fields; the ID is generated when empty.
func (n Names) withDefaults() Names {
	if n.Zone == "" {
		n.Zone = DefaultZone
	}
	n.Zone = strings.ToLower(strings.TrimSuffix(n.Zone, "."))
	n.Cluster = Label(n.Cluster)
	if n.ID == "" {
		n.ID = newID()
	}
	n.ID = strings.ToLower(n.ID)
	return n
}

// validate checks that every part makes valid DNS names.
func (n Names) validate() error {
	for _, l := range strings.Split(n.Zone, ".") {
		if !validLabel(l) {
			return fmt.Errorf("%w: zone %q: label %q is not a DNS label (letters, digits, '-', at most 63)", ErrInvalidConfig, n.Zone, l)
		}
	}
	if !validLabel(n.ID) {
		return fmt.Errorf("%w: ID %q is not a DNS label (letters, digits, '-', at most 63)", ErrInvalidConfig, n.ID)
	}
	return nil
}

// Writer is the cluster endpoint's name: it follows the writer.
func (n Names) Writer() string { return n.Cluster + ".cluster-" + n.ID + "." + n.Zone }

// Reader is the reader endpoint's name: it spreads connections over the readers.
func (n Names) Reader() string { return n.Cluster + ".cluster-ro-" + n.ID + "." + n.Zone }

// Instance is node's own name: it always reaches that node, whatever its role.
func (n Names) Instance(node string) string { return Label(node) + "." + n.ID + "." + n.Zone }

// Proxy is the name of a PgBouncer endpoint; role is "writer" or "reader".
func (n Names) Proxy(role string) string {
	if role == "reader" {
		return n.Cluster + "-ro.endpoint.proxy-" + n.ID + "." + n.Zone
	}
	return n.Cluster + ".proxy-" + n.ID + "." + n.Zone
}

// Label turns s into a DNS label: lower case, letters, digits and '-' (anything
// else becomes '-'), no leading or trailing '-', at most 63 characters;
// DefaultCluster when nothing is left.
func Label(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	l := b.String()
	if len(l) > 63 {
		l = l[:63]
	}
	l = strings.Trim(l, "-")
	if l == "" {
		return DefaultCluster
	}
	return l
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// newID returns a random lower-case alphanumeric ID of idLength characters.
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, idLength)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	// A label may start with a digit, but an ID that reads as a word is easier to
	// tell apart from the node numbers around it.
	b[0] = alphabet[int(b[0])%26]
	return string(b)
}
