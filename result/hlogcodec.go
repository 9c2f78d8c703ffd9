package result

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// The HdrHistogram V2 compressed encoding, as the interval log holds it: base64 of
// a compressed cookie, the zlib stream's length and the stream, which inflates to
// a 40-byte header (cookie, payload length, normalizing offset, significant
// digits, lowest and highest trackable values, conversion ratio) and the counts,
// ZigZag LEB128, a negative value standing for a run of empty buckets. This codec
// reuses its buffers and its zlib state across histograms: a merge reads and
// writes hundreds of thousands of them, and the library's own codec allocates a
// fresh zlib state for each.
const (
	v2Cookie           = 0x1c849303 | 0x10
	v2CompressedCookie = 0x1c849304 | 0x10
	v2HeaderSize       = 40
)

// geometry is the bucket layout of a histogram's lowest value and precision, to
// map a counts index to the lowest value of its bucket and back.
type geometry struct {
	unit, halfMag uint
	halfCount     int64
	mask          uint64
	lowest, high  int64
	sig           int32
}

func newGeometry(lowest, highest int64, sig int32) (geometry, error) {
	if sig < 0 || sig > 5 {
		return geometry{}, fmt.Errorf("%d significant digits: must be 0 to 5", sig)
	}
	lowest = max(lowest, 1)
	largest := 2 * math.Pow10(int(sig))
	countMag := int32(math.Ceil(math.Log2(largest)))
	halfMag := max(countMag, 1) - 1
	unit := int32(math.Floor(math.Log2(float64(lowest))))
	if unit+halfMag > 61 {
		return geometry{}, fmt.Errorf("lowest value %d is too large for %d significant digits", lowest, sig)
	}
	g := geometry{unit: uint(unit), halfMag: uint(halfMag), halfCount: 1 << halfMag, lowest: lowest, high: highest, sig: sig}
	g.mask = uint64(2*g.halfCount-1) << g.unit
	return g, nil
}

// countsLen is the length of the counts array of a histogram of this geometry
// up to its highest trackable value, as HdrHistogram sizes it: the bound of a
// valid encoding's bucket indexes.
func (g geometry) countsLen() int64 {
	smallestUntrackable := 2 * g.halfCount << g.unit
	buckets := int64(1)
	for smallestUntrackable <= g.high {
		if smallestUntrackable > math.MaxInt64/2 {
			buckets++
			break
		}
		smallestUntrackable <<= 1
		buckets++
	}
	return (buckets + 1) * g.halfCount
}

// value is the lowest value of the bucket at counts index idx.
func (g geometry) value(idx int64) int64 {
	bucket := (idx >> g.halfMag) - 1
	sub := (idx & (g.halfCount - 1)) + g.halfCount
	if bucket < 0 {
		sub -= g.halfCount
		bucket = 0
	}
	return sub << (uint(bucket) + g.unit)
}

// index is the counts index of value v's bucket.
func (g geometry) index(v int64) int64 {
	bucket := int64(64-bits.LeadingZeros64(uint64(v)|g.mask)) - int64(g.unit) - int64(g.halfMag+1)
	sub := v >> (uint(bucket) + g.unit)
	return (bucket+1)<<g.halfMag + sub - g.halfCount
}

// Recorder is a histogram that counts values: *hdrhistogram.Histogram and
// *hdrhistogram.PackedHistogram are.
type Recorder interface {
	RecordValues(v, n int64) error
}

// hlogCodec decodes and encodes histograms with reused buffers. Not safe for
// concurrent use.
type hlogCodec struct {
	raw      []byte
	inflated bytes.Buffer
	src      bytes.Reader
	zr       io.ReadCloser
	zbuf     bytes.Buffer
	zw       *zlib.Writer
	payload  []byte
	out      []byte
}

// decodeInto adds the histogram encoded in b64 to into, each bucket's count at the
// bucket's lowest value (the same bucket in a histogram of the same geometry).
func (c *hlogCodec) decodeInto(b64 []byte, into Recorder) error {
	n := base64.StdEncoding.DecodedLen(len(b64))
	if cap(c.raw) < n {
		c.raw = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(c.raw[:n], b64)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	raw := c.raw[:n]
	if len(raw) < 8 || int32(binary.BigEndian.Uint32(raw))&^0xf0 != 0x1c849304 {
		return errors.New("histogram: not a V2 compressed histogram")
	}
	clen := int(binary.BigEndian.Uint32(raw[4:]))
	if clen < 0 || clen > len(raw)-8 {
		return errors.New("histogram: truncated")
	}
	c.src.Reset(raw[8 : 8+clen])
	if c.zr == nil {
		if c.zr, err = zlib.NewReader(&c.src); err != nil {
			return fmt.Errorf("histogram: %w", err)
		}
	} else if err := c.zr.(zlib.Resetter).Reset(&c.src, nil); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	// The header first: its payload length is checked against what the geometry
	// can hold before anything more is inflated, so a small stream cannot make
	// the reader allocate without bound.
	var hdr [v2HeaderSize]byte
	if _, err := io.ReadFull(c.zr, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("histogram: not a V2 histogram (truncated header)")
		}
		return fmt.Errorf("histogram: %w", err)
	}
	if int32(binary.BigEndian.Uint32(hdr[0:]))&^0xf0 != 0x1c849303 {
		return errors.New("histogram: not a V2 histogram")
	}
	plen := int64(int32(binary.BigEndian.Uint32(hdr[4:])))
	sig := int32(binary.BigEndian.Uint32(hdr[12:]))
	lowest := int64(binary.BigEndian.Uint64(hdr[16:]))
	highest := int64(binary.BigEndian.Uint64(hdr[24:]))
	g, err := newGeometry(lowest, highest, sig)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	// A valid payload holds at most one count (nine bytes at most) per bucket.
	countsLen := g.countsLen()
	if plen < 0 || plen > 9*countsLen {
		return fmt.Errorf("histogram: a payload of %d bytes, but %d buckets hold at most %d", plen, countsLen, 9*countsLen)
	}
	// One byte past the payload: reaching the end there also checks the stream's
	// checksum.
	c.inflated.Reset()
	if _, err := c.inflated.ReadFrom(io.LimitReader(c.zr, plen+1)); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	if n := int64(c.inflated.Len()); n != plen {
		return fmt.Errorf("histogram: a payload of %d bytes, but its header says %d", n, plen)
	}
	p := c.inflated.Bytes()
	var idx int64
	for len(p) > 0 {
		v, k := zigzagDecode(p)
		if k == 0 {
			return errors.New("histogram: truncated count")
		}
		p = p[k:]
		if v < 0 {
			// A run of -v empty buckets (v == MinInt64 has no negation).
			if v == math.MinInt64 || -v > countsLen-idx {
				return fmt.Errorf("histogram: a run of %d empty buckets at bucket %d passes the last (%d)", -v, idx, countsLen)
			}
			idx -= v
			continue
		}
		if idx >= countsLen {
			return fmt.Errorf("histogram: a count at bucket %d passes the last (%d)", idx, countsLen)
		}
		if v > 0 {
			if err := into.RecordValues(g.value(idx), v); err != nil {
				return fmt.Errorf("histogram: %w", err)
			}
		}
		idx++
	}
	return nil
}

// encode returns h's V2 compressed base64 encoding (readable by every
// HdrHistogram implementation); it is valid until the next call.
func (c *hlogCodec) encode(h *hdrhistogram.PackedHistogram) ([]byte, error) {
	g, err := newGeometry(h.LowestTrackableValue(), h.HighestTrackableValue(), int32(h.SignificantFigures()))
	if err != nil {
		return nil, err
	}
	p := c.payload[:0]
	next := int64(0)
	h.ForEachBucket(func(value, count int64) bool {
		if count == 0 {
			return true
		}
		idx := g.index(value)
		if gap := idx - next; gap == 1 {
			p = zigzagAppend(p, 0)
		} else if gap > 1 {
			p = zigzagAppend(p, -gap)
		}
		p = zigzagAppend(p, count)
		next = idx + 1
		return true
	})
	c.payload = p
	var hdr [v2HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[0:], v2Cookie)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	binary.BigEndian.PutUint32(hdr[12:], uint32(g.sig))
	binary.BigEndian.PutUint64(hdr[16:], uint64(g.lowest))
	binary.BigEndian.PutUint64(hdr[24:], uint64(g.high))
	binary.BigEndian.PutUint64(hdr[32:], math.Float64bits(1))
	c.zbuf.Reset()
	var frame [8]byte
	c.zbuf.Write(frame[:]) // the cookie and length, filled in below
	if c.zw == nil {
		c.zw, _ = zlib.NewWriterLevel(&c.zbuf, zlib.BestSpeed)
	} else {
		c.zw.Reset(&c.zbuf)
	}
	_, _ = c.zw.Write(hdr[:])
	_, _ = c.zw.Write(p)
	if err := c.zw.Close(); err != nil {
		return nil, err
	}
	raw := c.zbuf.Bytes()
	binary.BigEndian.PutUint32(raw[0:], v2CompressedCookie)
	binary.BigEndian.PutUint32(raw[4:], uint32(len(raw)-8))
	n := base64.StdEncoding.EncodedLen(len(raw))
	if cap(c.out) < n {
		c.out = make([]byte, n)
	}
	c.out = c.out[:n]
	base64.StdEncoding.Encode(c.out, raw)
	return c.out, nil
}

// zigzagDecode reads one ZigZag LEB128 value as HdrHistogram writes it (at most
// nine bytes, the ninth holding eight bits); k is 0 when b is truncated.
func zigzagDecode(b []byte) (v int64, k int) {
	var u uint64
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			u |= uint64(b[i]) << 56
			k = 9
			break
		}
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			k = i + 1
			break
		}
	}
	return int64(u>>1) ^ -int64(u&1), k
}

// zigzagAppend appends v ZigZag LEB128 encoded, as zigzagDecode reads it.
func zigzagAppend(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for i := 0; i < 8; i++ {
		if u < 0x80 {
			return append(b, byte(u))
		}
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}
