package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Server serves a run's metrics over HTTP: /metrics for Prometheus.
type Server struct {
	ln   net.Listener
	hs   *http.Server
	done chan struct{}
	err  error
}

// Listen binds addr (a host:port; port 0 picks a free one) and serves m's metrics
// there until Close. A taken or unusable address is an error naming it, before
// anything is served. It binds what it is given: the scenario's validation keeps
// addr on loopback unless telemetry.metrics_allow_remote permits another
// (scenarios.Telemetry.MetricsRemote), and the CLI then says it is exposed.
func Listen(addr string, m *Metrics) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics server on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "rehearse: this run's Prometheus metrics are at /metrics\n")
	})
	s := &Server{ln: ln, done: make(chan struct{}),
		hs: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}}
	go func() {
		defer close(s.done)
		if err := s.hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving: it lets scrapes in flight finish (until ctx ends) and
// returns once the server is down.
func (s *Server) Close(ctx context.Context) error {
	err := s.hs.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.hs.Close())
	}
	<-s.done
	return errors.Join(err, s.err)
}
