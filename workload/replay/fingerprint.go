package replay

import (
	"bytes"
)

// fingerprinter writes a statement's fingerprint: constants and parameters as "?",
// keywords in capitals and other words in lower case, one space between tokens
// (none inside parentheses, before commas or around dots and casts), IN (…) and
// ARRAY[…] lists of constants as "(...)" and "[...]", repeated VALUES rows once
// followed by ", ...", comments and a final semicolon dropped.
type fingerprinter struct {
	out       []byte
	truncated bool
	prevKind  int
	prevKW    int
	frames    []frame
	values    valuesRows
	// sign: the token just written is a unary - or +, at signAt (with its space),
	// to fold into a following constant: -5 and 5 are the same constant.
	sign         bool
	signAt       int
	signPrevKind int
	signPrevKW   int
}

// frame is an open parenthesis or bracket.
type frame struct {
	pos       int  // where it starts in out
	only      bool // only constants and commas inside so far
	consts    bool // at least one constant inside
	list      bool // IN ( or ARRAY [
	valuesRow bool // a row of a VALUES list
}

// valuesRows tracks the rows of the last VALUES list, to write repeated rows once.
type valuesRows struct {
	active     bool
	depth      int
	start, end int // the last row kept
	have       bool
}

func (f *fingerprinter) token(kind int, text string, kw int) {
	if f.truncated {
		return
	}
	if len(f.out) > maxFingerprint {
		cut := maxFingerprint
		for cut > 0 && f.out[cut]&0xC0 == 0x80 {
			cut-- // do not split a UTF-8 sequence
		}
		f.out = append(f.out[:cut], " …"...)
		f.truncated = true
		return
	}
	isSign := kind == tOp && (text == "-" || text == "+") && !isValue(f.prevKind, f.prevKW)
	if f.sign {
		f.sign = false
		if kind == tConst {
			f.out = f.out[:f.signAt]
			f.prevKind, f.prevKW = f.signPrevKind, f.signPrevKW
		} else if n := len(f.frames); n > 0 {
			f.frames[n-1].only = false // a sign without a number after it
		}
	}
	if kind == tSemi {
		f.frames = f.frames[:0]
		f.values.active = false
	}
	// What is inside a list decides whether it collapses.
	if n := len(f.frames); n > 0 && kind != tClose && kind != tRBrack {
		top := &f.frames[n-1]
		switch {
		case kind == tConst:
			top.consts = true
		case kind == tComma, isSign:
		default:
			top.only = false
		}
	}
	if f.values.active && len(f.frames) == f.values.depth && kind != tComma && kind != tOpen {
		f.values.active = false
	}
	f.space(kind)
	start := len(f.out)
	switch {
	case kind == tWord && kw != kwNone:
		f.out = appendUpper(f.out, text)
	case kind == tWord:
		f.out = appendLower(f.out, text)
	default:
		f.out = append(f.out, text...)
	}
	switch kind {
	case tOp:
		if isSign {
			f.sign = true
			f.signAt = start
			if start > 0 && f.out[start-1] == ' ' {
				f.signAt = start - 1
			}
			f.signPrevKind, f.signPrevKW = f.prevKind, f.prevKW
		}
	case tOpen, tLBrack:
		fr := frame{pos: start, only: true}
		fr.list = f.prevKind == tWord && (kind == tOpen && f.prevKW == kwIn || kind == tLBrack && f.prevKW == kwArray)
		fr.valuesRow = kind == tOpen && f.values.active && len(f.frames) == f.values.depth &&
			(f.prevKind == tWord && f.prevKW == kwValues || f.prevKind == tComma)
		f.frames = append(f.frames, fr)
	case tClose, tRBrack:
		if n := len(f.frames); n > 0 {
			fr := f.frames[n-1]
			f.frames = f.frames[:n-1]
			f.closeFrame(fr, kind)
		}
	case tWord:
		if kw == kwValues {
			f.values = valuesRows{active: true, depth: len(f.frames)}
		}
	}
	f.prevKind, f.prevKW = kind, kw
}

// closeFrame collapses a list of constants, or a VALUES row equal to the one
// before it, that has just been written.
func (f *fingerprinter) closeFrame(fr frame, kind int) {
	switch {
	case fr.list && fr.only && fr.consts:
		f.out = f.out[:fr.pos]
		if kind == tClose {
			f.out = append(f.out, "(...)"...)
		} else {
			f.out = append(f.out, "[...]"...)
		}
	case fr.valuesRow && kind == tClose:
		v := &f.values
		row := f.out[fr.pos:]
		if v.have && v.end <= fr.pos {
			sep := string(f.out[v.end:fr.pos])
			if (sep == ", " || sep == ", ..., ") && bytes.Equal(row, f.out[v.start:v.end]) {
				f.out = append(f.out[:v.end], ", ..."...)
				return
			}
		}
		v.start, v.end, v.have = fr.pos, len(f.out), true
	}
}

// space writes the separator a token of kind needs after the previous one.
func (f *fingerprinter) space(kind int) {
	if len(f.out) == 0 {
		return
	}
	switch f.prevKind {
	case tOpen, tLBrack, tDot, tCast:
		return
	}
	switch kind {
	case tClose, tRBrack, tComma, tSemi, tDot, tCast, tLBrack:
		return
	case tOpen:
		// A function call: name(…); a keyword keeps its space: IN (…).
		if f.prevKind == tWord && f.prevKW == kwNone || f.prevKind == tQIdent {
			return
		}
	}
	f.out = append(f.out, ' ')
}

// isValue reports whether a token of this kind ends an operand, so that a
// following - or + is binary.
func isValue(kind, kw int) bool {
	switch kind {
	case tConst, tQIdent, tClose, tRBrack:
		return true
	case tWord:
		return kw == kwNone
	}
	return false
}

// finish drops a final semicolon.
func (f *fingerprinter) finish() {
	if !f.truncated {
		for len(f.out) > 0 && (f.out[len(f.out)-1] == ';' || f.out[len(f.out)-1] == ' ') {
			f.out = f.out[:len(f.out)-1]
		}
	}
}
