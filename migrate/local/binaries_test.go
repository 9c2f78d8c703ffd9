package local

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", want: "15.18"},
		{in: "postgres (PostgreSQL) 17.2", want: "17.2"},
		{in: "postgres (PostgreSQL) 9.6.24", want: "9.6.24"},
		{in: "postgres (PostgreSQL) 18beta1", want: "18"},
		{in: "something else", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseVersion(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseVersion(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestBinariesMajor(t *testing.T) {
	tests := []struct {
		version string
		want    int
	}{{"15.18", 15}, {"9.6.24", 9}, {"17", 17}, {"", 0}, {"x.1", 0}}
	for _, tt := range tests {
		if got := (Binaries{Version: tt.version}).Major(); got != tt.want {
			t.Errorf("Major(%q) = %d, want %d", tt.version, got, tt.want)
		}
	}
}

func TestFindBinaries(t *testing.T) {
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	b, err := FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatalf("FindBinaries: %v", err)
	}
	if b.Major() < 10 {
		t.Errorf("version %q: want a major version >= 10", b.Version)
	}
	for _, p := range requiredPrograms {
		if !filepath.IsAbs(b.Path(p)) {
			t.Errorf("Path(%q) = %q, want absolute", p, b.Path(p))
		}
	}
	// The explicit directory gives the same answer.
	again, err := FindBinaries(t.Context(), b.Dir)
	if err != nil || again != b {
		t.Errorf("FindBinaries(%q) = %+v, %v; want %+v", b.Dir, again, err, b)
	}
}

func TestFindBinariesBogusDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no-such-bin")
	_, err := FindBinaries(t.Context(), dir)
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	for _, want := range []string{dir, "initdb"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
