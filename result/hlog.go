package result

import (
	"errors"
	"fmt"
	"io"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ErrHlogTag is wrapped when an operation name cannot be an HdrHistogram log tag.
var ErrHlogTag = errors.New("invalid hlog tag")

// HlogWriter streams interval histograms to a latency.hlog file in HdrHistogram's
// interval log format (version 1.3), one histogram per operation per interval,
// tagged with the operation's name. HdrHistogram's HistogramLogProcessor (Java) and
// hdrhistogram-go's HistogramLogReader read it; with -tag OP the processor selects
// one operation.
//
// Values are written in the unit the histograms were recorded in. The log's
// interval max column and HistogramLogProcessor assume nanoseconds by default; for
// microsecond histograms pass -outputValueUnitRatio 1000 to the processor.
//
// Timestamps are relative to a base time (the run start rounded down to a whole
// second, which is the precision of the #[BaseTime] header), so interval start
// times in the log are close to the run's timeline seconds.
type HlogWriter struct {
	lw     *hdrhistogram.HistogramLogWriter
	w      io.Writer
	baseMs int64
	codec  hlogCodec // for WritePackedInterval
}

// NewHlogWriter writes the log header — format version, start time, base time and
// the column legend — to w and returns a writer for the intervals.
func NewHlogWriter(w io.Writer, start time.Time) (*HlogWriter, error) {
	lw := hdrhistogram.NewHistogramLogWriter(w)
	startMs := start.UnixMilli()
	baseMs := startMs / 1000 * 1000
	lw.SetBaseTime(baseMs)
	for _, f := range []func() error{
		lw.OutputLogFormatVersion,
		func() error {
			return lw.OutputComment("rehearse latency log: one interval histogram per operation, Tag=operation")
		},
		func() error { return lw.OutputStartTime(startMs) },
		func() error { return lw.OutputBaseTime(baseMs) },
		lw.OutputLegend,
	} {
		if err := f(); err != nil {
			return nil, fmt.Errorf("write hlog header: %w", err)
		}
	}
	return &HlogWriter{lw: lw, w: w, baseMs: baseMs}, nil
}

// WriteInterval writes h as the histogram of operation op for the interval
// [from, to). It sets h's tag and start/end timestamps. The tag must not contain
// commas, spaces or line breaks (the format forbids them).
func (hw *HlogWriter) WriteInterval(op string, from, to time.Time, h *hdrhistogram.Histogram) error {
	for _, r := range op {
		if r == ',' || r == ' ' || r == '\n' || r == '\r' {
			return fmt.Errorf("%w: %q contains a comma, space or line break", ErrHlogTag, op)
		}
	}
	h.SetTag(op)
	h.SetStartTimeMs(from.UnixMilli())
	h.SetEndTimeMs(to.UnixMilli())
	if err := hw.lw.OutputIntervalHistogram(h); err != nil {
		return fmt.Errorf("write hlog interval %s: %w", op, err)
	}
	return nil
}
