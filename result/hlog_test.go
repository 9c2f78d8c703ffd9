package result

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func TestHlogRoundTrip(t *testing.T) {
	start := time.Date(2025, 3, 14, 9, 30, 0, 250_000_000, time.UTC)
	var buf bytes.Buffer
	hw, err := NewHlogWriter(&buf, start)
	if err != nil {
		t.Fatal(err)
	}
	type interval struct {
		op     string
		sec    int
		values []int64 // microseconds
	}
	var in []interval
	for sec := 0; sec < 3; sec++ {
		for i, op := range []string{"transfer", "balance"} {
			var vs []int64
			for v := int64(1); v <= 1000; v++ {
				vs = append(vs, v*int64(100*(i+1)+sec))
			}
			in = append(in, interval{op, sec, vs})
		}
	}
	for _, iv := range in {
		h := hdrhistogram.New(1, 60_000_000, 3)
		for _, v := range iv.values {
			if err := h.RecordValue(v); err != nil {
				t.Fatal(err)
			}
		}
		from := start.Add(time.Duration(iv.sec) * time.Second)
		if err := hw.WriteInterval(iv.op, from, from.Add(time.Second), h); err != nil {
			t.Fatal(err)
		}
	}
	text := buf.String()
	for _, want := range []string{"#[Histogram log format version 1.3]", "#[StartTime: ", "#[BaseTime: ", "\"StartTimestamp\"", "Tag=transfer,", "Tag=balance,"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}

	r := hdrhistogram.NewHistogramLogReader(strings.NewReader(text))
	for i, iv := range in {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			t.Fatalf("interval %d missing", i)
		}
		if h.Tag() != iv.op {
			t.Errorf("interval %d tag = %q, want %q", i, h.Tag(), iv.op)
		}
		if h.TotalCount() != int64(len(iv.values)) {
			t.Errorf("interval %d count = %d, want %d", i, h.TotalCount(), len(iv.values))
		}
		want := iv.values[989] // the 99th percentile of 1000 evenly spaced values
		if got := h.ValueAtQuantile(99); absDiff(got, want) > want/500 {
			t.Errorf("interval %d p99 = %d, want ≈ %d", i, got, want)
		}
		// Interval starts are relative to the base time and land on the run's seconds.
		gotStart := float64(h.StartTimeMs()) / 1000
		wantStart := float64(start.Add(time.Duration(iv.sec)*time.Second).UnixMilli()) / 1000
		if d := gotStart - wantStart; d > 0.002 || d < -0.002 {
			t.Errorf("interval %d start = %.3f, want %.3f", i, gotStart, wantStart)
		}
	}
	if h, err := r.NextIntervalHistogram(); h != nil || (err != nil && !errors.Is(err, io.EOF)) {
		t.Errorf("extra interval %v, %v", h, err)
	}
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestHlogRejectsBadTag(t *testing.T) {
	hw, err := NewHlogWriter(io.Discard, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	err = hw.WriteInterval("bad tag", time.Unix(0, 0), time.Unix(1, 0), hdrhistogram.New(1, 1000, 2))
	if !errors.Is(err, ErrHlogTag) {
		t.Errorf("err = %v, want ErrHlogTag", err)
	}
}
