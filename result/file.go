package result

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrNotResult is wrapped by errors about input that is not a rehearse result.json.
var ErrNotResult = errors.New("not a rehearse result")

// ErrSchema is wrapped by errors about a result written with another schema version.
var ErrSchema = errors.New("unsupported result schema")

// ReadFile reads and decodes a result.json. Errors wrap ErrNotResult when the file
// is not JSON or not a result, and ErrSchema when its schema is not SchemaV1; the
// message names the file and says what to do.
func ReadFile(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	res, err := Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

// Decode reads one result from r. Errors wrap ErrNotResult or ErrSchema as ReadFile's
// do. Unknown fields are accepted: later v1 writers may add fields.
func Decode(r io.Reader) (*Result, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: the input is not a JSON object (%v); expected the result.json a `rehearse run` writes", ErrNotResult, err)
	}
	raw, ok := probe["schema"]
	if !ok {
		return nil, fmt.Errorf("%w: JSON without a \"schema\" field; expected the result.json a `rehearse run` writes (schema %q)", ErrNotResult, SchemaV1)
	}
	var schema string
	if err := json.Unmarshal(raw, &schema); err != nil {
		return nil, fmt.Errorf("%w: \"schema\" is not a string", ErrNotResult)
	}
	if schema == SchemaCapacityV1 {
		return nil, fmt.Errorf("%w: this is a capacity result (schema %q), not a run's; `rehearse report render` renders it, `report compare` compares runs only", ErrSchema, schema)
	}
	if schema != SchemaV1 {
		return nil, fmt.Errorf("%w: schema is %q but this rehearse reads %q; render it with the rehearse version that wrote it", ErrSchema, schema, SchemaV1)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%w: schema %q but a field does not match it: %v", ErrNotResult, schema, err)
	}
	return &res, nil
}

// WriteFileAtomic writes a file through write so that path never holds a partial
// file: the bytes go to a temporary file in the same directory, which is synced and
// then renamed over path. On any error the temporary file is removed and path is
// left as it was.
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err = write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	// Sync the directory so the rename itself survives a crash; not every
	// filesystem supports it, so a failure here is not an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Encode writes res as indented JSON: the result.json format.
func Encode(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return nil
}
