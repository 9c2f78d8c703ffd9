package result

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample(t *testing.T) *Result {
	t.Helper()
	res, err := ReadFile("../report/testdata/sample-wet.json")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body string
		want       error
		msg        string
	}{
		{"yaml.json", "name: smoke\n", ErrNotResult, "not a JSON object"},
		{"array.json", "[1,2]", ErrNotResult, "not a JSON object"},
		{"other.json", `{"hello": "world"}`, ErrNotResult, "without a \"schema\""},
		{"v2.json", `{"schema": "rehearse/result/v2"}`, ErrSchema, `"rehearse/result/v2"`},
		{"bad-field.json", `{"schema": "rehearse/result/v1", "duration_s": "long"}`, ErrNotResult, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(tt.name, tt.body)
			_, err := ReadFile(p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("message %q should name the file and contain %q", err, tt.msg)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	res := sample(t)
	var b bytes.Buffer
	if err := Encode(&b, res); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	if err := Encode(&b2, back); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("../report/testdata/sample-wet.json")
	if !bytes.Equal(b2.Bytes(), want) {
		t.Error("result does not round-trip through JSON")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "result.json")
	if err := WriteFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "first"); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFileAtomic(path, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half a fi")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "first" {
		t.Errorf("file = %q after a failed write, want the previous content", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "nodir", "x"), func(io.Writer) error { return nil }); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
