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

// Interval is one histogram of an interval log: its tag, its start and end in
// milliseconds since the epoch, and the histogram (sparse).
type Interval struct {
	Tag            string
	StartMs, EndMs int64
	Histogram      *hdrhistogram.PackedHistogram
}

// ReadHlog calls fn with each interval histogram of an HdrHistogram interval log
// (the latency.hlog format NewHlogWriter writes), in order. Times are absolute: the
// log's base time plus each interval's offset. Histograms are decoded sparse, so a
// log of hours of intervals reads in a fraction of its dense size. Each histogram
// is decoded afresh: fn may keep it.
func ReadHlog(r io.Reader, fn func(Interval) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var baseMs int64
	lineNo := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A histogram line longer than the buffer: read the rest of it.
			rest, rerr := br.ReadBytes('\n')
			line = append(append([]byte{}, line...), rest...)
			err = rerr
		}
		if len(line) > 0 {
			lineNo++
			if iv, ok, perr := parseHlogLine(bytes.TrimRight(line, "\r\n"), &baseMs); perr != nil {
				return fmt.Errorf("%w: line %d: %v", ErrHlog, lineNo, perr)
			} else if ok {
				if err := fn(iv); err != nil {
					return err
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
	h, err := hdrhistogram.DecodePacked(fields[3])
	if err != nil {
		return iv, false, err
	}
	iv.StartMs = *baseMs + int64(math.Round(start*1000))
	iv.EndMs = *baseMs + int64(math.Round((start+length)*1000))
	iv.Histogram = h
	return iv, true, nil
}

// WritePackedInterval writes p as tag's histogram for [from, to), as WriteInterval
// does for a dense one (the merge writes the histograms it summed sparse).
func (hw *HlogWriter) WritePackedInterval(tag string, fromMs, toMs int64, p *hdrhistogram.PackedHistogram) error {
	for _, r := range tag {
		if r == ',' || r == ' ' || r == '\n' || r == '\r' {
			return fmt.Errorf("%w: %q contains a comma, space or line break", ErrHlogTag, tag)
		}
	}
	p.SetTag(tag)
	p.SetStartTimeMs(fromMs)
	p.SetEndTimeMs(toMs)
	if err := hw.lw.OutputIntervalPackedHistogram(p); err != nil {
		return fmt.Errorf("write hlog interval %s: %w", tag, err)
	}
	return nil
}
