package replay

// The lexer's scanning helpers: quoted strings, comments, numbers, character
// classes and keyword lookup, over bytes, without allocating.

import (
	"bytes"
	"hash/fnv"
	"strconv"
)

// skipQuoted returns the index after the quote closing a string or quoted
// identifier whose body starts at i. A doubled quote is part of the body; with
// backslash, so is a quote after a backslash (E'…').
func skipQuoted(s string, i int, q byte, backslash bool) int {
	for i < len(s) {
		c := s[i]
		switch {
		case backslash && c == '\\':
			i += 2
		case c == q:
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// skipComment returns the index after the (nested) block comment starting at i.
func skipComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case i+1 < len(s) && s[i] == '/' && s[i+1] == '*':
			depth++
			i += 2
		case i+1 < len(s) && s[i] == '*' && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// dollarQuoted reports whether a dollar-quoted string starts at i ($$…$$ or
// $tag$…$tag$) and returns the index after it.
func dollarQuoted(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && isIdentStart(s[j]) {
		for j < len(s) && isIdentChar(s[j]) && s[j] != '$' {
			j++
		}
	}
	if j >= len(s) || s[j] != '$' {
		return 0, false
	}
	tag := s[i : j+1]
	k := indexFrom(s, tag, j+1)
	if k < 0 {
		return len(s), true
	}
	return k + len(tag), true
}

func indexFrom(s, sub string, from int) int {
	if from > len(s) {
		return -1
	}
	k := bytes.Index([]byte(s[from:]), []byte(sub))
	if k < 0 {
		return -1
	}
	return from + k
}

// skipNumber returns the index after the numeric constant starting at i: digits
// with underscores, a fraction, an exponent, or a 0x/0o/0b integer.
func skipNumber(s string, i int) int {
	n := len(s)
	if i+1 < n && s[i] == '0' && (s[i+1]|0x20 == 'x' || s[i+1]|0x20 == 'o' || s[i+1]|0x20 == 'b') {
		i += 2
		for i < n && (isHex(s[i]) || s[i] == '_') {
			i++
		}
		return i
	}
	for i < n && (isDigit(s[i]) || s[i] == '_') {
		i++
	}
	if i < n && s[i] == '.' && !(i+1 < n && s[i+1] == '.') {
		i++
		for i < n && (isDigit(s[i]) || s[i] == '_') {
			i++
		}
	}
	if i < n && s[i]|0x20 == 'e' {
		j := i + 1
		if j < n && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < n && isDigit(s[j]) {
			i = j
			for i < n && isDigit(s[i]) {
				i++
			}
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}
func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }
func isOpChar(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '<', '>', '=', '~', '!', '@', '#', '%', '^', '&', '|', '`', '?':
		return true
	}
	return false
}

// keywordID returns the keyword id of word (kwNone for other words), without
// allocating.
func keywordID(word string) int {
	if len(word) > 24 {
		return kwNone
	}
	var b [24]byte
	for i := 0; i < len(word); i++ {
		c := word[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	return keywords[string(b[:len(word)])]
}

// lowerName returns word in lower case when it is short enough to be a function
// of interest; the returned string is only valid for a map lookup.
func lowerName(word string) string {
	if len(word) > 40 {
		return ""
	}
	for i := 0; i < len(word); i++ {
		if c := word[i]; c >= 'A' && c <= 'Z' {
			b := []byte(word)
			for j := range b {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return word
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func appendUpper(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// opName is the operation name of a fingerprint: the fingerprint itself, or, when
// longer than maxOpName, its start, "…" and a hash that keeps names unique.
func opName(fp string) string {
	const maxOpName = 160
	if len(fp) <= maxOpName {
		return fp
	}
	cut := maxOpName
	for cut > 0 && fp[cut]&0xC0 == 0x80 {
		cut-- // do not split a UTF-8 sequence
	}
	h := fnv.New32a()
	h.Write([]byte(fp))
	return fp[:cut] + " … #" + strconv.FormatUint(uint64(h.Sum32()), 16)
}
