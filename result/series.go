package result

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// AvailabilitySeries is what a run's unavailability windows are computed from: per
// millisecond of its timeline and per kind of operation, how many were attempted
// (by intended start), failed (by intended start) and succeeded (by completion).
// Counts saturate at 255, which still tells whether any happened. A shard of a
// sharded run writes it (SeriesFile); the merge sums the shards' and computes the
// windows again, since a window of one shard need not be one of the fleet.
type AvailabilitySeries struct {
	Write, Read KindSeries
}

// KindSeries is one kind's per-millisecond counts.
type KindSeries struct {
	Attempts, Failures, Successes []uint8
}

// seriesMagic opens a series file (inside its gzip stream).
const seriesMagic = "rehearse-availability-series/v1\n"

// ErrSeries is wrapped by errors reading a series file.
var ErrSeries = errors.New("not an availability series")

func (s *AvailabilitySeries) arrays() []*[]uint8 {
	return []*[]uint8{&s.Write.Attempts, &s.Write.Failures, &s.Write.Successes,
		&s.Read.Attempts, &s.Read.Failures, &s.Read.Successes}
}

// WriteSeries writes s gzip-compressed: the magic line, then each of the six
// arrays (write attempts, failures, successes, then read) as a uvarint length and
// its bytes.
func WriteSeries(w io.Writer, s *AvailabilitySeries) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(zw, seriesMagic); err != nil {
		return err
	}
	var lb [binary.MaxVarintLen64]byte
	for _, a := range s.arrays() {
		n := binary.PutUvarint(lb[:], uint64(len(*a)))
		if _, err := zw.Write(lb[:n]); err != nil {
			return err
		}
		if _, err := zw.Write(*a); err != nil {
			return err
		}
	}
	return zw.Close()
}

// maxSeriesLen bounds an array read back: a day of milliseconds.
const maxSeriesLen = 24 * 3600 * 1000

// ReadSeries reads what WriteSeries wrote.
func ReadSeries(r io.Reader) (*AvailabilitySeries, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSeries, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<16)
	magic := make([]byte, len(seriesMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != seriesMagic {
		return nil, fmt.Errorf("%w: the file does not start with %q", ErrSeries, seriesMagic[:len(seriesMagic)-1])
	}
	s := &AvailabilitySeries{}
	for _, a := range s.arrays() {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSeries, err)
		}
		if n > maxSeriesLen {
			return nil, fmt.Errorf("%w: an array of %d milliseconds", ErrSeries, n)
		}
		*a = make([]uint8, n)
		if _, err := io.ReadFull(br, *a); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSeries, err)
		}
	}
	return s, nil
}

// Add adds o's counts to s's, saturating at 255.
func (s *AvailabilitySeries) Add(o *AvailabilitySeries) {
	for i, a := range s.arrays() {
		b := *o.arrays()[i]
		if len(b) > len(*a) {
			*a = append(*a, make([]uint8, len(b)-len(*a))...)
		}
		dst := *a
		for j, v := range b {
			sum := uint16(dst[j]) + uint16(v)
			dst[j] = uint8(min(sum, 255))
		}
	}
}
