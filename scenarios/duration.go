package scenarios

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// errNoUnit is returned by ParseDuration for a bare number.
var errNoUnit = errors.New("a duration needs a unit: write a unit, e.g. 30s")

// ParseDuration parses a Go duration string such as "30s", "1m30s" or "500ms". A bare
// number is rejected because its unit would be a guess.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%q: %w", s, errNoUnit)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s, 1m30s or 500ms (units: ns, us, ms, s, m, h): %w", s, err)
	}
	return Duration(d), nil
}

// UnmarshalYAML accepts a Go duration string and rejects bare numbers, so that
// Duration also decodes strictly when a caller uses yaml.Unmarshal directly.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a string like 30s", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalText writes the duration as Go formats it ("1m30s"), so it round-trips
// through YAML and JSON.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string; it lets Duration serve as a flag value
// (flag.TextVar) and a JSON string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
