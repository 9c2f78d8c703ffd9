package result

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ErrHlog is wrapped by errors reading an interval log.
var ErrHlog = errors.New("invalid hlog")

// Interval is one histogram of an interval log: its tag and its start and end in
// milliseconds since the epoch. Into and Histogram decode it; the interval is
// valid only while the callback that got it runs.
type Interval struct {
	Tag            string
	StartMs, EndMs int64
	payload        []byte
	codec          *hlogCodec
}

// Into adds the interval's counts to h, each at its bucket's lowest value: into
// a histogram of the same range and precision, the same buckets.
// An interval that does not decode, or whose values h cannot record, is an error
// wrapping ErrHlog.
func (iv Interval) Into(h Recorder) error {
	if err := iv.codec.decodeInto(iv.payload, h); err != nil {
		return fmt.Errorf("%w: %w", ErrHlog, err)
	}
	return nil
}

// Histogram decodes the interval into a new sparse histogram.
func (iv Interval) Histogram() (*hdrhistogram.PackedHistogram, error) {
	return hdrhistogram.DecodePacked(iv.payload)
}

// maxHlogLine bounds a line of an interval log: the longest histogram line, the
// widest geometry HdrHistogram encodes (5 significant digits, values to 2^63) with
// every bucket counted, is under 80 MiB. A variable for tests.
var maxHlogLine = 128 << 20

// ReadHlog calls fn with each interval histogram of an HdrHistogram interval log
// (the latency.hlog format NewHlogWriter writes), in order. Times are absolute: the
// log's base time plus each interval's offset. Decoding is left to fn (Into), with
// buffers reused across intervals, so a log of hours of intervals reads fast. A
// malformed line is an error wrapping ErrHlog, as is a line longer than any
// histogram's (128 MiB): the memory a log takes to read is bounded.
func ReadHlog(r io.Reader, fn func(Interval) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	codec := &hlogCodec{}
	var baseMs int64
	lineNo := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A histogram line longer than the buffer: read the rest of it.
			long := append([]byte{}, line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > maxHlogLine {
					return fmt.Errorf("%w: line %d is longer than %d MiB, more than any histogram takes", ErrHlog, lineNo+1, maxHlogLine>>20)
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			lineNo++
			if iv, ok, perr := parseHlogLine(bytes.TrimRight(line, "\r\n"), &baseMs); perr != nil {
				return fmt.Errorf("%w: line %d: %v", ErrHlog, lineNo, perr)
			} else if ok {
				iv.codec = codec
				if err := fn(iv); err != nil {
					return fmt.Errorf("line %d: %w", lineNo, err)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var (
	baseTimePrefix = []byte("#[BaseTime: ")
	tagPrefix      = []byte("Tag=")
)

func parseHlogLine(line []byte, baseMs *int64) (Interval, bool, error) {
	var iv Interval
	switch {
	case len(line) == 0:
		return iv, false, nil
	case bytes.HasPrefix(line, baseTimePrefix):
		rest := line[len(baseTimePrefix):]
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			return iv, false, errors.New("malformed BaseTime")
		}
		secs, err := strconv.ParseFloat(string(rest[:end]), 64)
		if err != nil {
			return iv, false, fmt.Errorf("malformed BaseTime: %v", err)
		}
		if !inSecondsRange(secs) {
			return iv, false, fmt.Errorf("BaseTime %s out of range", rest[:end])
		}
		*baseMs = int64(math.Round(secs * 1000))
		return iv, false, nil
	case line[0] == '#', line[0] == '"':
		return iv, false, nil
	}
	if bytes.HasPrefix(line, tagPrefix) {
		c := bytes.IndexByte(line, ',')
		if c < 0 {
			return iv, false, errors.New("a tag without an interval")
		}
		iv.Tag = string(line[len(tagPrefix):c])
		line = line[c+1:]
	}
	var fields [4][]byte
	for i := range 3 {
		c := bytes.IndexByte(line, ',')
		if c < 0 {
			return iv, false, errors.New("an interval needs start, length, max and histogram")
		}
		fields[i], line = line[:c], line[c+1:]
	}
	fields[3] = line
	start, err1 := strconv.ParseFloat(string(fields[0]), 64)
	length, err2 := strconv.ParseFloat(string(fields[1]), 64)
	if err1 != nil || err2 != nil {
		return iv, false, errors.New("malformed interval start or length")
	}
	if !inSecondsRange(start) || !inSecondsRange(length) {
		return iv, false, errors.New("interval start or length out of range")
	}
	if len(fields[3]) == 0 {
		return iv, false, errors.New("an interval without its histogram")
	}
	iv.StartMs = *baseMs + int64(math.Round(start*1000))
	iv.EndMs = *baseMs + int64(math.Round((start+length)*1000))
	iv.payload = fields[3]
	return iv, true, nil
}

// inSecondsRange reports whether secs is a finite number of seconds whose
// milliseconds, and their sums, fit an int64 with room to spare.
func inSecondsRange(secs float64) bool { return math.Abs(secs) < 1e12 }

// WritePackedInterval writes p as tag's histogram for [fromMs, toMs) (milliseconds
// since the epoch), as WriteInterval does for a dense one: the merge writes the
// histograms it summed sparse, with buffers reused across intervals.
func (hw *HlogWriter) WritePackedInterval(tag string, fromMs, toMs int64, p *hdrhistogram.PackedHistogram) error {
	for _, r := range tag {
		if r == ',' || r == ' ' || r == '\n' || r == '\r' {
			return fmt.Errorf("%w: %q contains a comma, space or line break", ErrHlogTag, tag)
		}
	}
	enc, err := hw.codec.encode(p)
	if err != nil {
		return fmt.Errorf("write hlog interval %s: %w", tag, err)
	}
	start := float64(fromMs-hw.baseMs) / 1000
	end := float64(toMs-hw.baseMs) / 1000
	// The library's line format: the interval's max in milliseconds of nanoseconds.
	if _, err := fmt.Fprintf(hw.w, "Tag=%s,%f,%f,%f,%s\n", tag, start, end-start, float64(p.Max())/hdrhistogram.MsToNsRatio, enc); err != nil {
		return fmt.Errorf("write hlog interval %s: %w", tag, err)
	}
	return nil
}
