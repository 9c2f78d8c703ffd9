package report

import "math"

// point is one (x, y) sample of a chart series.
type point struct{ x, y float64 }

// lttb downsamples pts to at most n points with Largest-Triangle-Three-Buckets
// (Steinarsson 2013): it keeps the first and last point and, per bucket, the point
// forming the largest triangle with its neighbours, so spikes survive.
func lttb(pts []point, n int) []point {
	if n >= len(pts) || n < 3 {
		if n < 3 && len(pts) > n && n > 0 {
			return pts[:n]
		}
		return pts
	}
	out := make([]point, 0, n)
	out = append(out, pts[0])
	every := float64(len(pts)-2) / float64(n-2)
	a := 0
	for i := 0; i < n-2; i++ {
		// Average of the next bucket.
		ns := int(math.Floor(float64(i+1)*every)) + 1
		ne := int(math.Floor(float64(i+2)*every)) + 1
		if ne > len(pts) {
			ne = len(pts)
		}
		var ax, ay float64
		for _, p := range pts[ns:ne] {
			ax += p.x
			ay += p.y
		}
		if m := float64(ne - ns); m > 0 {
			ax /= m
			ay /= m
		}
		// Pick the point of this bucket with the largest triangle.
		bs := int(math.Floor(float64(i)*every)) + 1
		be := int(math.Floor(float64(i+1)*every)) + 1
		best, bestArea := bs, -1.0
		pa := pts[a]
		for j := bs; j < be; j++ {
			area := math.Abs((pa.x-ax)*(pts[j].y-pa.y) - (pa.x-pts[j].x)*(ay-pa.y))
			if area > bestArea {
				best, bestArea = j, area
			}
		}
		out = append(out, pts[best])
		a = best
	}
	return append(out, pts[len(pts)-1])
}

// segments splits pts at gaps wider than gap on the x axis, so lines break where
// there is no data instead of bridging it.
func segments(pts []point, gap float64) [][]point {
	var out [][]point
	start := 0
	for i := 1; i < len(pts); i++ {
		if pts[i].x-pts[i-1].x > gap {
			out = append(out, pts[start:i])
			start = i
		}
	}
	if start < len(pts) {
		out = append(out, pts[start:])
	}
	return out
}

// downsample reduces segmented series to about n points in total, sharing n among
// the segments by their length.
func downsample(segs [][]point, n int) [][]point {
	total := 0
	for _, s := range segs {
		total += len(s)
	}
	if total <= n {
		return segs
	}
	out := make([][]point, len(segs))
	for i, s := range segs {
		k := int(math.Ceil(float64(n) * float64(len(s)) / float64(total)))
		if k < 2 {
			k = 2
		}
		out[i] = lttb(s, k)
	}
	return out
}
