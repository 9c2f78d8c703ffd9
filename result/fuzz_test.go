package result

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// frameHistogram encodes inflated (a V2 header and its counts) as an interval log
// holds a histogram: base64 of the compressed cookie, the length and the zlib
// stream.
func frameHistogram(inflated []byte) []byte {
	framer.Lock()
	defer framer.Unlock()
	framer.z.Reset()
	if framer.zw == nil {
		framer.zw, _ = zlib.NewWriterLevel(&framer.z, zlib.BestSpeed)
	} else {
		framer.zw.Reset(&framer.z)
	}
	_, _ = framer.zw.Write(inflated)
	_ = framer.zw.Close()
	raw := binary.BigEndian.AppendUint32(nil, v2CompressedCookie)
	raw = binary.BigEndian.AppendUint32(raw, uint32(framer.z.Len()))
	raw = append(raw, framer.z.Bytes()...)
	return []byte(base64.StdEncoding.EncodeToString(raw))
}

// framer's zlib writer is reused: a fresh one per fuzz input costs more than the
// rest of the input's work.
var framer struct {
	sync.Mutex
	z  bytes.Buffer
	zw *zlib.Writer
}

// v2Header is a V2 histogram header: the payload's length and the geometry.
func v2Header(plen uint32, sig int32, lowest, highest int64) []byte {
	var h [v2HeaderSize]byte
	binary.BigEndian.PutUint32(h[0:], v2Cookie)
	binary.BigEndian.PutUint32(h[4:], plen)
	binary.BigEndian.PutUint32(h[12:], uint32(sig))
	binary.BigEndian.PutUint64(h[16:], uint64(lowest))
	binary.BigEndian.PutUint64(h[24:], uint64(highest))
	binary.BigEndian.PutUint64(h[32:], math.Float64bits(1))
	return h[:]
}

// sampleHlog is a small interval log as a run writes it: a dense and a sparse
// histogram, in microseconds and nanoseconds.
func sampleHlog(tb testing.TB) []byte {
	start := time.UnixMilli(1_700_000_000_250)
	var buf bytes.Buffer
	hw, err := NewHlogWriter(&buf, start)
	if err != nil {
		tb.Fatal(err)
	}
	h := hdrhistogram.New(1000, 3_600_000_000_000, 3)
	for v := int64(1000); v < 50_000_000; v += 104_729 {
		_ = h.RecordValues(v, v%7+1)
	}
	if err := hw.WriteInterval("transfer", start, start.Add(time.Second), h); err != nil {
		tb.Fatal(err)
	}
	p := hdrhistogram.NewPacked(1, 60_000_000, 2)
	for _, v := range []int64{1, 2, 3, 900, 59_999_999} {
		_ = p.RecordValue(v)
	}
	if err := hw.WritePackedInterval("lag", start.UnixMilli()+1000, start.UnixMilli()+2000, p); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzReadHlog feeds arbitrary bytes to the interval log reader and decodes every
// interval it yields, into a histogram of the recorder's geometry and on its own:
// errors wrap ErrHlog, never a panic, a hang or an allocation the input does not
// pay for.
func FuzzReadHlog(f *testing.F) {
	log := sampleHlog(f)
	f.Add(log)
	f.Add(bytes.ReplaceAll(log, []byte("\n"), []byte("\r\n")))
	lines := bytes.SplitAfter(log, []byte("\n"))
	f.Add(bytes.Join(lines[len(lines)-3:], nil)) // intervals without the header
	for _, s := range []string{
		"", "\n", "#[BaseTime: ", "#[BaseTime: NaN (seconds since epoch)]\n", "#[BaseTime: 1e300 x]\n",
		"Tag=x,1.0,1.0\n", "Tag=,0,1,2,\n", "0,1,2,HISTFAAAAA==\n", "Tag=a,Inf,1,0,HISTFAAAAA==\n",
		"Tag=a,0,1,0," + string(frameHistogram(v2Header(1<<31-1, 3, 1, 3_600_000_000))) + "\n",
		"Tag=a,0,1,0," + string(frameHistogram(append(v2Header(10, 3, 1, 1000), 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x02))) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := ReadHlog(bytes.NewReader(data), func(iv Interval) error {
			n++
			if iv.EndMs < iv.StartMs-2e15 || iv.EndMs > iv.StartMs+2e15 {
				t.Fatalf("interval [%d, %d): out of the range a line can give", iv.StartMs, iv.EndMs)
			}
			if err := iv.Into(hdrhistogram.New(1000, 3_600_000_000_000, 3)); err != nil && !errors.Is(err, ErrHlog) {
				t.Fatalf("Into: %v does not wrap ErrHlog", err)
			}
			_, _ = iv.Histogram()
			return nil
		})
		if err != nil && !errors.Is(err, ErrHlog) {
			t.Fatalf("ReadHlog: %v does not wrap ErrHlog", err)
		}
		if n > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d intervals from %d lines", n, bytes.Count(data, []byte("\n"))+1)
		}
	})
}

// FuzzHlogHistogram feeds arbitrary inflated histograms (a V2 header and counts)
// to the codec, framed as a log line holds them, and the arbitrary bytes
// themselves as a line's histogram: the codec returns an error or the counts
// HdrHistogram's own decoder reads, and what it reads it encodes back the same.
func FuzzHlogHistogram(f *testing.F) {
	// Small histograms as the writers encode them: the fuzzer minimizes every input
	// that finds new code, and a small one minimizes in a moment.
	var c hlogCodec // reused across inputs, as a merge reuses it across intervals
	for _, h := range []struct {
		lowest, highest int64
		sig             int
		values          []int64
	}{
		{1000, 3_600_000_000_000, 3, []int64{1000, 1500, 250_000, 250_001, 3_000_000_000}},
		{1, 60_000_000, 2, []int64{1, 2, 3, 900, 59_999_999}},
		{1, 2, 1, []int64{0, 1, 2}},
	} {
		p := hdrhistogram.NewPacked(h.lowest, h.highest, h.sig)
		for i, v := range h.values {
			_ = p.RecordValues(v, int64(i+1))
		}
		enc, err := c.encode(p)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(string(enc))
		if err != nil {
			f.Fatal(err)
		}
		zr, err := zlib.NewReader(bytes.NewReader(raw[8:]))
		if err != nil {
			f.Fatal(err)
		}
		var inflated bytes.Buffer
		if _, err := inflated.ReadFrom(zr); err != nil {
			f.Fatal(err)
		}
		f.Add(inflated.Bytes())
	}
	f.Add(v2Header(0, 3, 1, 3_600_000_000))
	f.Add(v2Header(1<<31-1, 5, 1, math.MaxInt64))
	f.Add(append(v2Header(3, 0, 1, 2), 0x02, 0x01, 0x04))
	f.Add(append(v2Header(2, 2, 1000, 1_000_000), 0x81, 0x01))
	f.Add(append(v2Header(9, 1, 1, 100), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, inflated []byte) {
		_ = c.decodeInto(inflated, hdrhistogram.NewPacked(1, 1000, 1)) // the bytes as the line's text
		enc := frameHistogram(inflated)
		want, libErr := hdrhistogram.DecodePacked(enc)
		if libErr != nil || want.SignificantFigures() < 1 {
			// What HdrHistogram refuses, the codec may read or refuse; a geometry of
			// 0 significant digits is read, but NewPacked cannot make one to compare.
			return
		}
		got := hdrhistogram.NewPacked(want.LowestTrackableValue(), want.HighestTrackableValue(), int(want.SignificantFigures()))
		if err := c.decodeInto(enc, got); err != nil {
			if strings.Contains(err.Error(), "overflow") {
				return // HdrHistogram's decoder caps a total past MaxInt64; recording refuses it
			}
			t.Fatalf("HdrHistogram reads %d values, the codec refuses: %v", want.TotalCount(), err)
		}
		if got.TotalCount() != want.TotalCount() || got.Max() != want.Max() || got.Min() != want.Min() {
			t.Fatalf("the codec reads %d values in [%d, %d], HdrHistogram %d in [%d, %d]",
				got.TotalCount(), got.Min(), got.Max(), want.TotalCount(), want.Min(), want.Max())
		}
		again, err := c.encode(got)
		if err != nil {
			t.Fatalf("encode what was read: %v", err)
		}
		back, err := hdrhistogram.DecodePacked(again)
		if err != nil {
			t.Fatalf("HdrHistogram cannot read the codec's encoding: %v", err)
		}
		if back.TotalCount() != want.TotalCount() || back.Max() != want.Max() {
			t.Fatalf("encoded back: %d values, max %d; want %d, %d", back.TotalCount(), back.Max(), want.TotalCount(), want.Max())
		}
	})
}

// A histogram whose header claims more payload than its geometry has buckets for
// is refused from its header, before its stream is inflated: a few kilobytes of
// log cannot make the reader allocate tens of megabytes.
func TestHlogRefusesInflatedBomb(t *testing.T) {
	bomb := append(v2Header(1<<31-1, 3, 1, 3_600_000_000), make([]byte, 32<<20)...)
	line := append(append([]byte("Tag=a,0.0,1.0,0.0,"), frameHistogram(bomb)...), '\n')
	if len(line) > 128<<10 {
		t.Fatalf("the bomb takes %d bytes of log", len(line))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := ReadHlog(bytes.NewReader(line), func(iv Interval) error {
		return iv.Into(hdrhistogram.NewPacked(1, 3_600_000_000, 3))
	})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrHlog) || !strings.Contains(err.Error(), "a payload of 2147483647 bytes, but") {
		t.Fatalf("err = %v, want ErrHlog naming the payload length", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("reading the bomb allocated %d MiB", alloc>>20)
	}
	// A payload of the length its header says, but longer than the geometry's
	// buckets: refused at the first count past the last bucket.
	g, _ := newGeometry(1, 100, 1)
	n := g.countsLen() + 1
	over := append(v2Header(uint32(n), 1, 1, 100), bytes.Repeat([]byte{0x02}, int(n))...)
	err = ReadHlog(bytes.NewReader(append(append([]byte("0,1,0,"), frameHistogram(over)...), '\n')), func(iv Interval) error {
		return iv.Into(hdrhistogram.NewPacked(1, 100, 1))
	})
	if !errors.Is(err, ErrHlog) || !strings.Contains(err.Error(), "passes the last") {
		t.Fatalf("err = %v, want a count past the last bucket", err)
	}
}

// A line longer than any histogram's is refused, without reading it whole.
func TestHlogRefusesEndlessLine(t *testing.T) {
	if maxHlogLine != 128<<20 {
		t.Fatalf("the limit is %d bytes", maxHlogLine)
	}
	defer func(n int) { maxHlogLine = n }(maxHlogLine)
	maxHlogLine = 8 << 20
	r := &endless{}
	err := ReadHlog(r, func(Interval) error { return nil })
	if !errors.Is(err, ErrHlog) || !strings.Contains(err.Error(), "line 1 is longer than 8 MiB") {
		t.Fatalf("err = %v", err)
	}
	if r.n > maxHlogLine+4<<20 {
		t.Errorf("read %d MiB of one line", r.n>>20)
	}
}

// endless is a line without an end.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, manyAs)
	e.n += n
	return n, nil
}

var manyAs = bytes.Repeat([]byte("A"), 1<<20)
