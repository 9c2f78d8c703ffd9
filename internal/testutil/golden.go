package testutil

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files (and generated fixtures) in testdata/ instead of comparing with them")

// Updating reports whether the test binary runs with -update, for tests that
// regenerate fixtures of their own.
func Updating() bool { return *update }

// Golden compares got with the file at path (relative to the package directory,
// usually under testdata/). On a mismatch the test fails (and goes on) with the
// first differing line and a few lines around it. Under -update it writes got to
// path instead, creating its directory.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	want, err := os.ReadFile(path)
	if *update {
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
			return
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
			return
		}
		t.Logf("wrote %s", path)
		return
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("golden file %s does not exist: run the test with -update to create it", path)
		return
	}
	if err != nil {
		t.Errorf("read golden file: %v", err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the output differs from the golden file %s %s\nif the change is intended, rerun the test with -update and review git diff", path, diff(got, want))
	}
}

// contextLines is how many equal lines diff shows before and after the first
// difference; maxLine is how much of a line it shows.
const (
	contextLines = 2
	maxLine      = 160
)

// diff describes where got first differs from want: the line, a few lines around
// it from both, and, for a long line, the part around the first differing byte.
func diff(got, want []byte) string {
	g, w := lines(got), lines(want)
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "at line %d (want %d lines, got %d):\n", i+1, len(w), len(g))
	col := 0
	if i < len(g) && i < len(w) {
		col = commonPrefix(g[i], w[i])
	}
	show := func(label string, ls []string) {
		fmt.Fprintf(&b, "%s:\n", label)
		for j := max(0, i-contextLines); j <= i+contextLines; j++ {
			mark := " "
			if j == i {
				mark = ">"
			}
			if j >= len(ls) {
				fmt.Fprintf(&b, "%s %5s | (end of file)\n", mark, "")
				break
			}
			fmt.Fprintf(&b, "%s %5d | %s\n", mark, j+1, excerpt(ls[j], col, j == i))
		}
	}
	show("want", w)
	show("got", g)
	if i < len(g) && i < len(w) {
		switch {
		case strings.TrimRight(g[i], "\n") == strings.TrimRight(w[i], "\n"):
			fmt.Fprintf(&b, "(line %d differs only in its line end: want %q, got %q)\n", i+1, w[i], g[i])
		case visible(g[i]) == visible(w[i]):
			fmt.Fprintf(&b, "(line %d differs only in white space: want %q, got %q)\n", i+1, w[i], g[i])
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// lines splits s after each newline; the newlines stay, so a missing final one
// is a difference too.
func lines(s []byte) []string {
	ls := strings.SplitAfter(string(s), "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// excerpt returns line without its newline, shortened to about maxLine bytes; the
// differing line keeps the part around byte col.
func excerpt(line string, col int, differing bool) string {
	line = strings.TrimRight(line, "\n")
	if len(line) <= maxLine {
		return line
	}
	start := 0
	if differing {
		start = max(0, col-maxLine/3)
	}
	end := min(len(line), start+maxLine)
	for start > 0 && !utf8.RuneStart(line[start]) {
		start--
	}
	for end < len(line) && !utf8.RuneStart(line[end]) {
		end--
	}
	out := line[start:end]
	if start > 0 {
		out = "…" + out
	}
	if end < len(line) {
		out += "…"
	}
	return out
}

// visible drops white space, which a terminal does not show distinctly.
func visible(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}
