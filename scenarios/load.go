package scenarios

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadFile reads, defaults and validates the scenario file at path. Every problem is
// reported at once in an *Errors (which matches ErrInvalid), including a missing or
// unreadable file. (It is not called Load because the Load struct has that name.)
func LoadFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("cannot read the scenario: %v", err)
		if errors.Is(err, os.ErrNotExist) {
			msg = "no such file; check the path, or write one with `rehearse scenario init > " + filepath.Base(path) + "`"
		}
		return nil, &Errors{List: []FieldError{{File: path, Msg: msg, err: err}}}
	}
	return Parse(path, data)
}

// LoadFileWith is LoadFile with edit applied to the decoded scenario before it is
// validated: for a command-line setting that permits what the file asks for, such
// as --metrics-allow-remote for the file's telemetry.metrics_addr. Problems are
// reported against the file, so edit should only lift a restriction; a flag that
// sets a value is applied to the loaded scenario, and checked as the flag's.
func LoadFileWith(path string, edit func(*Scenario)) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return LoadFile(path)
	}
	return parse(path, data, edit)
}

// Parse decodes a scenario from data over Defaults(), then validates it. file names
// the source in error messages and is stored in Scenario.File, with the hex SHA-256 of
// data in Scenario.SHA256. Fields absent from data keep their defaults; a mix or list
// given in data replaces the default wholly; an empty name becomes the file's base
// name without its extension. On invalid input the error is an *Errors listing every
// problem with its file:line:col, and the scenario is nil.
func Parse(file string, data []byte) (*Scenario, error) { return parse(file, data, nil) }

func parse(file string, data []byte, edit func(*Scenario)) (*Scenario, error) {
	d := newDecoder(file)
	s := defaults()
	root, ok := d.document(data)
	if ok {
		d.decode(root, reflect.ValueOf(&s).Elem(), "")
		if _, stale := d.pos["cutover.stale_dns_window"]; stale {
			if _, prop := d.pos["cutover.dns_propagation"]; !prop {
				s.Cutover.DNSPropagation = s.Cutover.StaleDNSWindow
			}
			s.Notes = append(s.Notes, "cutover.stale_dns_window is deprecated: the dns endpoints are a real DNS server now, and it sets cutover.dns_propagation, the delay before their records flip to the new writer; write dns_propagation instead")
		}
		d.aliases(&s)
		for i := range s.Workload.Scripts {
			// A script without a weight runs as often as one weighted 1; an explicit
			// 0 is an error (Validate).
			if _, given := d.pos[fmt.Sprintf("workload.scripts[%d].weight", i)]; !given {
				s.Workload.Scripts[i].Weight = 1
			}
		}
		s.ApplyPreset(func(path string) bool {
			_, ok := d.pos[path]
			return ok
		})
		s.resolve()
		if s.Workload.Name != WorkloadBanking {
			if _, given := d.pos["workload.mix"]; given && slices.Contains(workloadNames, s.Workload.Name) {
				p := d.pos["workload.mix"]
				d.errs = append(d.errs, FieldError{File: file, Line: p.line, Col: p.col, Field: "workload.mix",
					Msg: fmt.Sprintf("the mix weights banking operations; workload %s has no mix, remove it", s.Workload.Name)})
				d.bad["workload.mix"] = true
			}
			s.Workload.Mix = nil
		}
		if s.Name == "" && file != "" {
			s.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
			if !nameRE.MatchString(s.Name) {
				s.Name = ""
			}
		}
		s.File = file
		if edit != nil {
			edit(&s)
		}
		for _, err := range s.Validate() {
			var fe FieldError
			if !errors.As(err, &fe) || d.badWithin(fe.Field) || slices.ContainsFunc(dependsOn(fe.Field), d.badWithin) {
				continue // a consequence of a problem already reported while decoding
			}
			fe.Line, fe.Col = d.locate(fe.Field)
			d.errs = append(d.errs, fe)
		}
	}
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, &Errors{List: d.errs}
	}
	sum := sha256.Sum256(data)
	s.File = file
	s.SHA256 = hex.EncodeToString(sum[:])
	return &s, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// document parses data into its single top-level mapping, reporting empty input,
// YAML syntax errors, extra documents and a top level that is not a mapping.
func (d *decoder) document(data []byte) (*yaml.Node, bool) {
	fail := func(line, col int, format string, args ...any) (*yaml.Node, bool) {
		d.errs = append(d.errs, FieldError{File: d.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
		return nil, false
	}
	const start = "write a scenario, or start from `rehearse scenario init`"
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(0, 0, "the file is empty; %s", start)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(0, 0, "the file holds no YAML content (only comments?); %s", start)
		}
		return d.syntax(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return fail(extra.Line, extra.Column, "the file holds more than one YAML document (---); keep one scenario per file")
	case !errors.Is(err, io.EOF):
		return d.syntax(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return fail(0, 0, "the file holds no YAML content (only comments?); %s", start)
	}
	root := resolveAlias(doc.Content[0])
	if isNull(root) {
		return fail(root.Line, root.Column, "the file holds no YAML content (only comments?); %s", start)
	}
	if root.Kind != yaml.MappingNode {
		return fail(root.Line, root.Column, "the top level must be a mapping of sections (%s); got %s", fieldNames(reflect.TypeFor[Scenario]()), describe(root))
	}
	return root, true
}

// syntax turns a yaml.v3 parse error into a FieldError with its line.
func (d *decoder) syntax(err error) (*yaml.Node, bool) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.errs = append(d.errs, FieldError{File: d.file, Line: line, Msg: "not valid YAML: " + msg + " (indent with spaces, not tabs; quote values containing ': ' or '#')", err: err})
	return nil, false
}

// locate returns the position of the field at path, or of its nearest ancestor
// written in the file (a missing field is reported where its section is), or 0, 0.
func (d *decoder) locate(path string) (line, col int) {
	for path != "" {
		if p, ok := d.pos[path]; ok {
			return p.line, p.col
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0, 0
}

// badWithin reports whether the field at path, or a field inside it, failed to
// decode: its value is then the default or incomplete, and validating it would
// report a consequence instead of the cause.
func (d *decoder) badWithin(path string) bool {
	if d.bad[path] {
		return true
	}
	for p := range d.bad {
		if strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// dependsOn lists the other fields a cross-field check on field reads. When one of
// them failed to decode it holds its default, so the check would mislead and is
// skipped.
func dependsOn(field string) []string {
	switch normalizePath(field) {
	case "cutover.warmup":
		return []string{"load.duration"}
	case "target.max_connections":
		return []string{"load.pool_size", "load.connections", "load.model"}
	case "load.stages", "load.think_time.mean":
		return []string{"load.model"}
	case "cutover.rollback":
		return []string{"cutover.steps"}
	case "slo.latency[].op":
		return []string{"workload.name"}
	case "telemetry.metrics_addr":
		return []string{"telemetry.metrics_allow_remote"}
	}
	return nil
}

// aliases reports a file that sets both names of one setting to different values.
func (d *decoder) aliases(s *Scenario) {
	for _, a := range []struct {
		alias, field string
		differ       bool
	}{
		{"load.pool_size", "client.pool_size", s.Load.PoolSize != s.Client.PoolSize},
		{"load.conn_max_lifetime", "client.max_lifetime", s.Load.ConnMaxLifetime != s.Client.MaxLifetime},
	} {
		_, x := d.pos[a.alias]
		_, y := d.pos[a.field]
		if x && y && a.differ {
			p := d.pos[a.alias]
			d.errs = append(d.errs, FieldError{File: d.file, Line: p.line, Col: p.col, Field: a.alias,
				Msg: "is an alias of " + a.field + ", which the file sets to another value; keep one of them"})
		}
	}
}
