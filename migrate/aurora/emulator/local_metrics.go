package emulator

var _ Meter = (*LocalBackend)(nil)

// NodePID implements Meter: the node's postmaster on this machine.
func (l *LocalBackend) NodePID(node string) int {
	for _, n := range l.c.Nodes() {
		if n.Name() == node {
			return n.PID()
		}
	}
	return 0
}

// NodeDSN implements Meter: the node's own address, as the superuser.
func (l *LocalBackend) NodeDSN(node string) string {
	for _, n := range l.c.Nodes() {
		if n.Name() == node {
			return n.DSN("postgres")
		}
	}
	return ""
}
