package scenarios

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// position is a 1-based line and column in the file.
type position struct{ line, col int }

// decoder walks a yaml.Node tree against the scenario structs (by their yaml tags),
// collecting every problem with its position instead of stopping at the first.
type decoder struct {
	file string
	errs []FieldError
	// pos maps a field path ("load.stages[1].rate") to where it is written.
	pos map[string]position
	// bad holds the paths that failed to decode, so validation does not report them
	// a second time.
	bad map[string]bool
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: map[string]position{}, bad: map[string]bool{}}
}

var durationType = reflect.TypeFor[Duration]()

// fail records a problem at node n.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.errs = append(d.errs, FieldError{File: d.file, Line: n.Line, Col: n.Column, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// join appends a field name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// resolveAlias follows YAML aliases (*name) to the anchored node.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an explicit null ("key:" or "key: ~"), which leaves the
// field at its default.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// decode sets v from n and reports whether it did. Fields absent from n keep the
// value v already holds (the default).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) bool {
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return false
	}
	t := v.Type()
	if t == durationType {
		return d.duration(n, v, path)
	}
	switch t.Kind() {
	case reflect.Pointer:
		nv := reflect.New(t.Elem())
		if !d.decode(n, nv.Elem(), path) {
			return false
		}
		v.Set(nv)
		return true
	case reflect.Struct:
		return d.structure(n, v, path)
	case reflect.Map:
		return d.mapping(n, v, path)
	case reflect.Slice:
		return d.sequence(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "must be a string, e.g. %s; got %s", example(path), describe(n))
			return false
		}
		v.SetString(n.Value)
		return true
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "must be true or false; got %s", describe(n))
			return false
		}
		v.SetBool(b)
		return true
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "must be an integer, e.g. %s; got %s", example(path), describe(n))
			return false
		}
		v.SetInt(i)
		return true
	case reflect.Uint64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.fail(n, path, "must be a non-negative integer, e.g. %s; got %s", example(path), describe(n))
			return false
		}
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			if n.Decode(&i) == nil && i >= 0 {
				u = uint64(i)
			} else {
				d.fail(n, path, "must be a non-negative integer, e.g. %s; got %s", example(path), describe(n))
				return false
			}
		}
		v.SetUint(u)
		return true
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			d.fail(n, path, "must be a number, e.g. %s; got %s", example(path), describe(n))
			return false
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "must be a finite number, e.g. %s; got %s", example(path), describe(n))
			return false
		}
		v.SetFloat(f)
		return true
	}
	// Only reachable if a field of an unsupported type is added to the structs; the
	// tests decode every field, so this is a programming error.
	d.fail(n, path, "cannot decode into Go type %s (a bug in rehearse)", t)
	return false
}

// duration decodes a Go duration string.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "must be a duration like %s; got %s", example(path), describe(n))
		return false
	}
	if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
		d.fail(n, path, "needs a unit: write a unit, e.g. %s (got %s)", example(path), n.Value)
		return false
	}
	dur, err := ParseDuration(n.Value)
	if err != nil {
		d.fail(n, path, "must be a duration like 30s, 1m30s or 500ms (units: ns, us, ms, s, m, h); got %q", n.Value)
		return false
	}
	v.SetInt(int64(dur))
	return true
}

// structField is one YAML-visible field of a struct.
type structField struct {
	name  string
	index int
}

// fieldsOf lists the YAML-visible fields of struct type t in declaration order.
func fieldsOf(t reflect.Type) []structField {
	var out []structField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{name: name, index: i})
	}
	return out
}

// structure decodes a mapping into a struct, rejecting unknown and repeated keys.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of fields (%s); got %s", fieldNames(v.Type()), describe(n))
		return false
	}
	fields := fieldsOf(v.Type())
	// Merge keys ("<<: *base") apply first so the mapping's own keys override them.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag == "!!merge" {
			d.merge(n.Content[i+1], v, path)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be plain field names (%s); got %s", fieldNames(v.Type()), describe(k))
			continue
		}
		fp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.fail(k, fp, "is given twice (first at line %d); keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		j := slices.IndexFunc(fields, func(f structField) bool { return f.name == k.Value })
		if j < 0 {
			d.fail(k, fp, "unknown field%s; %s takes: %s", suggest(k.Value, fields), sectionName(path), fieldNames(v.Type()))
			continue
		}
		d.record(k, resolveAlias(val), fp)
		d.decode(val, v.Field(fields[j].index), fp)
	}
	return true
}

// merge applies a YAML merge key ("<<: *base") to a struct.
func (d *decoder) merge(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if n.Kind == yaml.SequenceNode {
		// Earlier mappings in the list take precedence, so apply them last.
		for _, m := range slices.Backward(n.Content) {
			d.decode(m, v, path)
		}
		return
	}
	d.decode(n, v, path)
}

// record remembers where the field at path is written: at its value for scalars (a
// type error points at the bad value), at its key for sections and lists.
func (d *decoder) record(key, val *yaml.Node, path string) {
	if _, ok := d.pos[path]; ok {
		return
	}
	if val != nil && val.Kind == yaml.ScalarNode && !isNull(val) {
		d.pos[path] = position{val.Line, val.Column}
		return
	}
	d.pos[path] = position{key.Line, key.Column}
}

// mapping decodes a mapping into a map[string]T. A map given in the file replaces
// the default wholly.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of name: value lines, e.g. {%s: %s}; got %s", exampleKey(path), example(path+".*"), describe(n))
		return false
	}
	m := reflect.MakeMap(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			d.fail(k, path, "keys must be plain names, e.g. %s; got %s", exampleKey(path), describe(k))
			continue
		}
		fp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.fail(k, fp, "is given twice (first at line %d); keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		d.pos[fp] = position{k.Line, k.Column}
		ev := reflect.New(v.Type().Elem()).Elem()
		if d.decode(val, ev, fp) {
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		} else if isNull(resolveAlias(val)) {
			d.fail(val, fp, "needs a value, e.g. %s: %s", k.Value, example(fp))
		}
	}
	v.Set(m)
	return true
}

// sequence decodes a list into a slice. Each struct element starts from its default
// (see elemDefault). A list given in the file replaces the default wholly.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list, e.g. %s; got %s", example(path), describe(n))
		return false
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		fp := fmt.Sprintf("%s[%d]", path, i)
		r := resolveAlias(item)
		d.pos[fp] = position{r.Line, r.Column}
		ev := reflect.New(v.Type().Elem()).Elem()
		elemDefault(ev)
		if !d.decode(item, ev, fp) {
			// Type errors are already reported; an empty item ("- ") is reported here.
			if isNull(r) {
				d.fail(r, fp, "is empty; give a value, e.g. %s, or remove the line", example(fp))
			}
			continue
		}
		s = reflect.Append(s, ev)
	}
	if s.Len() == 0 {
		s = reflect.Zero(v.Type()) // "[]" means none, like an absent list
	}
	v.Set(s)
	return true
}

// elemDefault sets the default of a list element before the file's values apply.
func elemDefault(v reflect.Value) {
	if l, ok := v.Addr().Interface().(*LatencySLO); ok {
		*l = DefaultLatencySLO()
	}
}

// describe names what a node holds, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
				return fmt.Sprintf("the string %q (remove the quotes)", n.Value)
			}
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// fieldNames lists the YAML names of struct type t's fields.
func fieldNames(t reflect.Type) string {
	var names []string
	for _, f := range fieldsOf(t) {
		names = append(names, f.name)
	}
	return strings.Join(names, ", ")
}

// sectionName names the section at path for messages.
func sectionName(path string) string {
	if path == "" {
		return "the top level"
	}
	if strings.HasSuffix(path, "]") {
		return "each item of " + path[:strings.LastIndex(path, "[")]
	}
	return path
}

// suggest returns `; did you mean "x"?` for the closest known field name, if close.
func suggest(name string, fields []structField) string {
	best, bestDist := "", 3
	for _, f := range fields {
		dist := levenshtein(strings.ToLower(name), f.name)
		if dist < bestDist || (strings.ReplaceAll(strings.ToLower(name), "-", "_") == f.name) {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
