package local

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// freePort asks the kernel for a free 127.0.0.1 port. Another process may take it
// before the server binds it; callers retry (retryPorts).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoFreePort, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree fails with ErrPortInUse when port cannot be bound on 127.0.0.1.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: 127.0.0.1:%d cannot be bound (%v); stop whatever listens there, choose another Port, or use Port 0 to pick a free one",
			ErrPortInUse, port, err)
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
