package local

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// freePort asks the kernel for a free port on host. Another process may take it
// before the server binds it; callers retry (retryPorts).
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("%w: on %s: %w", ErrNoFreePort, host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree fails with ErrPortInUse when port cannot be bound on host.
func checkPortFree(host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("%w: %s: %s is not an address of this machine (%v); Linux routes all of 127.0.0.0/8 to the loopback interface, other systems need it added (macOS: ifconfig lo0 alias %s)",
			ErrNoFreePort, addr, host, err, host)
	}
	if err != nil {
		return fmt.Errorf("%w: %s cannot be bound (%v); stop whatever listens there, choose another Port, or use Port 0 to pick a free one",
			ErrPortInUse, addr, err)
	}
	return l.Close()
}

// retryPorts calls try with ports from pick until one works, a failure is not a port
// conflict (returned as is), or attempts run out (ErrNoFreePort).
func retryPorts(attempts int, pick func() (int, error), try func(port int) error) (int, error) {
	var last error
	for range attempts {
		port, err := pick()
		if err != nil {
			last = err
			continue
		}
		err = try(port)
		if err == nil {
			return port, nil
		}
		if !errors.Is(err, ErrPortInUse) {
			return 0, err
		}
		last = err
	}
	return 0, fmt.Errorf("%w: %d attempts failed; the last one:\n%v", ErrNoFreePort, attempts, last)
}
