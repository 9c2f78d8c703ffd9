package shard

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{"0/3", Spec{0, 3}, ""},
		{"2/3", Spec{2, 3}, ""},
		{" 0/1 ", Spec{0, 1}, ""},
		{"3/3", Spec{}, "index must be from 0 to 2"},
		{"-1/3", Spec{}, "index must be from 0 to 2"},
		{"0/0", Spec{}, "count must be at least 1"},
		{"1", Spec{}, "INDEX/COUNT"},
		{"a/3", Spec{}, "whole numbers"},
		{"1/b", Spec{}, "whole numbers"},
		{"", Spec{}, "INDEX/COUNT"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want an ErrSpec saying %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		want      Spec
		ok        bool
		wantError string
	}{
		{"neither", map[string]string{}, Spec{}, false, ""},
		{"an indexed job's pod", map[string]string{EnvIndex: "2", EnvShards: "3"}, Spec{2, 3}, true, ""},
		{"index without count", map[string]string{EnvIndex: "1"}, Spec{}, false, EnvShards + " is not"},
		{"count without index", map[string]string{EnvShards: "3"}, Spec{}, false, EnvIndex + " is not"},
		{"out of range", map[string]string{EnvIndex: "3", EnvShards: "3"}, Spec{}, false, "from 0 to 2"},
		{"not a number", map[string]string{EnvIndex: "x", EnvShards: "3"}, Spec{}, false, "whole numbers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantError != "" {
				if err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("FromEnv = %v, %v, %v; want an ErrSpec saying %q", got, ok, err, tt.wantError)
				}
				return
			}
			if err != nil || ok != tt.ok || got != tt.want {
				t.Fatalf("FromEnv = %v, %v, %v; want %v, %v", got, ok, err, tt.want, tt.ok)
			}
		})
	}
}

// The shares of every shard add up to the whole, without overlap or gap.
func TestShareCoversTheWhole(t *testing.T) {
	for _, tc := range []struct{ total, count int }{{10, 3}, {9, 3}, {2, 3}, {1_000_000, 16}, {7, 1}} {
		next := 0
		for i := range tc.count {
			n, off := Spec{i, tc.count}.Share(tc.total)
			if off != next {
				t.Fatalf("%d over %d: shard %d starts at %d, want %d", tc.total, tc.count, i, off, next)
			}
			if lo, hi := tc.total/tc.count, (tc.total+tc.count-1)/tc.count; n < lo || n > hi {
				t.Fatalf("%d over %d: shard %d takes %d", tc.total, tc.count, i, n)
			}
			next += n
		}
		if next != tc.total {
			t.Fatalf("%d over %d: the shares sum to %d", tc.total, tc.count, next)
		}
	}
}

func TestSeedDiffersPerShard(t *testing.T) {
	s0, s1, s2 := Spec{0, 3}, Spec{1, 3}, Spec{2, 3}
	if s0.Seed(7) != 7 {
		t.Error("shard 0 keeps the run's seed")
	}
	if s1.Seed(7) == s2.Seed(7) {
		t.Error("two shards share a seed")
	}
}
