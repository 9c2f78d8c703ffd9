package result

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func TestSeriesRoundTripAndSum(t *testing.T) {
	s := &AvailabilitySeries{
		Write: KindSeries{Attempts: []uint8{1, 2, 250}, Failures: []uint8{0, 1}, Successes: []uint8{1, 1, 0, 0}},
		Read:  KindSeries{Attempts: []uint8{}, Failures: nil, Successes: []uint8{9}},
	}
	var buf bytes.Buffer
	if err := WriteSeries(&buf, s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSeries(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Write, s.Write) || !bytes.Equal(got.Read.Successes, s.Read.Successes) || len(got.Read.Attempts) != 0 {
		t.Fatalf("read back %+v, want %+v", got, s)
	}
	got.Add(&AvailabilitySeries{Write: KindSeries{Attempts: []uint8{1, 1, 10, 7}}})
	if want := []uint8{2, 3, 255, 7}; !bytes.Equal(got.Write.Attempts, want) {
		t.Errorf("sum %v, want %v (saturating at 255)", got.Write.Attempts, want)
	}
	if _, err := ReadSeries(bytes.NewReader([]byte("not gzip"))); !errors.Is(err, ErrSeries) {
		t.Errorf("garbage: %v", err)
	}
}

// What HlogWriter writes, dense or packed, ReadHlog reads back with its tags,
// absolute times and counts.
func TestReadHlog(t *testing.T) {
	start := time.UnixMilli(1_700_000_000_250)
	var buf bytes.Buffer
	hw, err := NewHlogWriter(&buf, start)
	if err != nil {
		t.Fatal(err)
	}
	h := hdrhistogram.New(1000, 3_600_000_000_000, 3)
	for v := int64(1000); v < 5_000_000; v += 7919 {
		_ = h.RecordValue(v)
	}
	if err := hw.WriteInterval("transfer", start, start.Add(time.Second), h); err != nil {
		t.Fatal(err)
	}
	p := hdrhistogram.NewPacked(1000, 3_600_000_000_000, 3)
	p.MergeFrom(h)
	if err := hw.WritePackedInterval("lag", start.UnixMilli()+1000, start.UnixMilli()+2000, p); err != nil {
		t.Fatal(err)
	}
	type read struct {
		Interval
		dense  *hdrhistogram.Histogram
		packed *hdrhistogram.PackedHistogram
	}
	var got []read
	if err := ReadHlog(&buf, func(iv Interval) error {
		r := read{Interval: iv, dense: hdrhistogram.New(1000, 3_600_000_000_000, 3)}
		if err := iv.Into(r.dense); err != nil {
			return err
		}
		var err error
		r.packed, err = iv.Histogram()
		got = append(got, r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d intervals", len(got))
	}
	for i, want := range []struct {
		tag      string
		from, to int64
	}{{"transfer", start.UnixMilli(), start.UnixMilli() + 1000}, {"lag", start.UnixMilli() + 1000, start.UnixMilli() + 2000}} {
		iv := got[i]
		if iv.Tag != want.tag || iv.StartMs != want.from || iv.EndMs != want.to {
			t.Errorf("interval %d: %s [%d, %d), want %+v", i, iv.Tag, iv.StartMs, iv.EndMs, want)
		}
		if !iv.dense.Equals(h) {
			t.Errorf("interval %d: decoded into a histogram, it differs from the one written", i)
		}
		if p := iv.packed; p.TotalCount() != h.TotalCount() || p.ValueAtPercentile(99) != h.ValueAtQuantile(99) || p.Max() != h.Max() {
			t.Errorf("interval %d: %d values, p99 %d, max %d; want %d, %d, %d", i, p.TotalCount(),
				p.ValueAtPercentile(99), p.Max(), h.TotalCount(), h.ValueAtQuantile(99), h.Max())
		}
	}
	if err := ReadHlog(bytes.NewReader([]byte("Tag=x,1.0,1.0\n")), func(Interval) error { return nil }); !errors.Is(err, ErrHlog) {
		t.Errorf("a malformed line: %v", err)
	}
}
