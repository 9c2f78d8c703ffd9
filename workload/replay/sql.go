package replay

// analysis is what the replay needs to know of one captured statement's text (a
// simple query may hold several statements; each is looked at in order).
type analysis struct {
	// write: not a read. A read is a SELECT (or WITH … SELECT, VALUES, TABLE, SHOW,
	// EXPLAIN without ANALYZE) without a locking clause, without SELECT … INTO and
	// without a call to a function in writeFuncs; a text with several statements is
	// a read only when each of them is.
	write bool
	// stmts is the number of statements in the text (0 for an empty query).
	stmts int
	// block is the text's last effect on the transaction block: blockNone, blockOpen
	// (BEGIN, START TRANSACTION) or blockClose (COMMIT, END, ROLLBACK, ABORT,
	// PREPARE TRANSACTION).
	block int8
	// commits: a statement commits (COMMIT, END, PREPARE TRANSACTION, COMMIT AND
	// CHAIN): its outcome is unknown when the connection breaks while it runs.
	commits bool
	// beginOnly and rollbackOnly: the text is one BEGIN, or one statement that
	// rolls back; neither can commit anything.
	beginOnly, rollbackOnly bool
	// pin is the text's last effect on session state later statements depend on:
	// pinNone, pinSet (PREPARE, CREATE TEMP, DECLARE … WITH HOLD, LISTEN, SET
	// search_path/ROLE/SESSION AUTHORIZATION, a session-level advisory lock) or
	// pinClear (DISCARD ALL).
	pin int8
	// dropsPrepared: DISCARD ALL or DEALLOCATE ALL drops every prepared statement
	// of the connection, the replay's own included.
	dropsPrepared bool
	// copyIn and copyOut: the text is one COPY … FROM STDIN or COPY … TO STDOUT.
	copyIn, copyOut bool
	// params is the highest parameter number ($1, $2 …) the text refers to.
	params int
}

// Effects of a statement on the transaction block and on pinned session state.
const (
	blockNone int8 = iota
	blockOpen
	blockClose
)

const (
	pinNone int8 = iota
	pinSet
	pinClear
)

// maxFingerprint bounds a fingerprint's length: a generated statement of megabytes
// must not make the fingerprint table grow with it. Longer fingerprints end in "…".
const maxFingerprint = 4096

// writeFuncs are functions that write, or must run on the writer for the
// application to work, although a SELECT calls them: sequences, advisory locks
// (they coordinate with writers on the primary), large objects, transaction ids,
// notifications, logical messages and WAL control. A SELECT calling one is a write.
// A user-defined function that writes cannot be told apart from one that does not:
// a SELECT calling it is a read.
var writeFuncs = map[string]bool{
	"nextval": true, "setval": true,
	"pg_advisory_lock": true, "pg_advisory_lock_shared": true,
	"pg_advisory_xact_lock": true, "pg_advisory_xact_lock_shared": true,
	"pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true,
	"pg_try_advisory_xact_lock": true, "pg_try_advisory_xact_lock_shared": true,
	"pg_advisory_unlock": true, "pg_advisory_unlock_shared": true, "pg_advisory_unlock_all": true,
	"lo_creat": true, "lo_create": true, "lo_import": true, "lo_export": true, "lo_unlink": true,
	"lo_put": true, "lo_from_bytea": true, "lo_open": true, "lo_write": true, "lowrite": true,
	"lo_truncate": true, "lo_truncate64": true,
	"txid_current": true, "pg_current_xact_id": true,
	"pg_notify": true, "pg_logical_emit_message": true,
	"pg_switch_wal": true, "pg_create_restore_point": true,
}

// sessionLockFuncs take an advisory lock held until the session ends or unlocks
// it: the session must keep its connection.
var sessionLockFuncs = map[string]bool{
	"pg_advisory_lock": true, "pg_advisory_lock_shared": true,
	"pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true,
}

// Keywords: the fingerprint writes them in capitals (other words in lower case, as
// PostgreSQL folds them); the classifier knows some by their id.
const (
	kwNone = iota
	kwSelect
	kwValues
	kwTable
	kwWith
	kwShow
	kwExplain
	kwAnalyze
	kwBegin
	kwStart
	kwTransaction
	kwCommit
	kwEnd
	kwRollback
	kwAbort
	kwPrepare
	kwPrepared
	kwTo
	kwWork
	kwAnd
	kwChain
	kwNo
	kwFor
	kwUpdate
	kwShare
	kwKey
	kwInsert
	kwDelete
	kwMerge
	kwInto
	kwCreate
	kwTemp
	kwTemporary
	kwDeclare
	kwHold
	kwListen
	kwSet
	kwSession
	kwLocal
	kwRole
	kwAuthorization
	kwSchema
	kwDiscard
	kwAll
	kwDeallocate
	kwCopy
	kwFrom
	kwStdin
	kwStdout
	kwAtomic
	kwCase
	kwIn
	kwArray
	kwNamed // the first keyword without a role in the classifier
)

var namedKeywords = [...]string{
	kwSelect: "SELECT", kwValues: "VALUES", kwTable: "TABLE", kwWith: "WITH", kwShow: "SHOW",
	kwExplain: "EXPLAIN", kwAnalyze: "ANALYZE", kwBegin: "BEGIN", kwStart: "START",
	kwTransaction: "TRANSACTION", kwCommit: "COMMIT", kwEnd: "END", kwRollback: "ROLLBACK",
	kwAbort: "ABORT", kwPrepare: "PREPARE", kwPrepared: "PREPARED", kwTo: "TO", kwWork: "WORK",
	kwAnd: "AND", kwChain: "CHAIN", kwNo: "NO", kwFor: "FOR", kwUpdate: "UPDATE", kwShare: "SHARE",
	kwKey: "KEY", kwInsert: "INSERT", kwDelete: "DELETE", kwMerge: "MERGE", kwInto: "INTO",
	kwCreate: "CREATE", kwTemp: "TEMP", kwTemporary: "TEMPORARY", kwDeclare: "DECLARE",
	kwHold: "HOLD", kwListen: "LISTEN", kwSet: "SET", kwSession: "SESSION", kwLocal: "LOCAL",
	kwRole: "ROLE", kwAuthorization: "AUTHORIZATION", kwSchema: "SCHEMA", kwDiscard: "DISCARD",
	kwAll: "ALL", kwDeallocate: "DEALLOCATE", kwCopy: "COPY", kwFrom: "FROM", kwStdin: "STDIN",
	kwStdout: "STDOUT", kwAtomic: "ATOMIC", kwCase: "CASE", kwIn: "IN", kwArray: "ARRAY",
}

// otherKeywords are capitalised in fingerprints but play no part in classifying.
var otherKeywords = []string{
	"WHERE", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "AS", "ON", "JOIN", "LEFT", "RIGHT",
	"INNER", "OUTER", "FULL", "CROSS", "NATURAL", "USING", "GROUP", "BY", "ORDER", "HAVING",
	"LIMIT", "OFFSET", "FETCH", "FIRST", "NEXT", "ROWS", "ROW", "ONLY", "UNION", "DISTINCT",
	"INTERSECT", "EXCEPT", "RETURNING", "MATCHED", "WHEN", "THEN", "ELSE", "CAST", "RECURSIVE",
	"LATERAL", "EXISTS", "BETWEEN", "LIKE", "ILIKE", "SIMILAR", "ESCAPE", "ASC", "DESC", "NULLS",
	"LAST", "DEFAULT", "CONFLICT", "DO", "NOTHING", "NOWAIT", "SKIP", "LOCKED", "SAVEPOINT",
	"RELEASE", "EXECUTE", "ALTER", "DROP", "INDEX", "VIEW", "SEQUENCE", "IF", "ADD", "COLUMN",
	"CONSTRAINT", "PRIMARY", "FOREIGN", "REFERENCES", "UNIQUE", "CHECK", "TRUNCATE", "GRANT",
	"REVOKE", "VACUUM", "NOTIFY", "UNLISTEN", "CURSOR", "CLOSE", "RESET", "ANY", "SOME",
	"INTERVAL", "TIMESTAMP", "DATE", "TIME", "ZONE", "AT", "ISOLATION", "LEVEL", "READ",
	"WRITE", "COMMITTED", "UNCOMMITTED", "REPEATABLE", "SERIALIZABLE", "DEFERRABLE", "OVER",
	"PARTITION", "WINDOW", "FILTER", "WITHIN", "COLLATE", "OF", "LOCK", "MODE", "EXCLUSIVE",
	"ACCESS", "TABLESAMPLE", "OVERLAPS", "ANALYSE", "VERBOSE", "CASCADE", "RESTRICT",
	"FUNCTION", "PROCEDURE", "CALL", "TRIGGER", "RETURNS", "LANGUAGE", "REFRESH",
	"MATERIALIZED", "CONCURRENTLY", "ESCAPE", "NUMERIC", "INTEGER", "INT", "BIGINT",
	"SMALLINT", "BOOLEAN", "VARCHAR", "CHARACTER", "VARYING", "TEXT", "USER", "CURRENT_DATE",
	"CURRENT_TIMESTAMP", "CURRENT_USER", "SESSION_USER", "LOCALTIMESTAMP", "EXTRACT",
	"COALESCE", "NULLIF", "GREATEST", "LEAST", "SYSTEM", "EACH", "OWNED", "REPLACE",
}

// keywords maps a keyword in capitals to its id (kwNamed for those only capitalised).
var keywords = func() map[string]int {
	m := make(map[string]int, len(namedKeywords)+len(otherKeywords))
	for id, k := range namedKeywords {
		if k != "" {
			m[k] = id
		}
	}
	for _, k := range otherKeywords {
		if _, ok := m[k]; !ok {
			m[k] = kwNamed
		}
	}
	// ANALYSE is PostgreSQL's other spelling of ANALYZE.
	m["ANALYSE"] = kwAnalyze
	return m
}()

// Token kinds.
const (
	tWord   = iota // an unquoted identifier or keyword
	tQIdent        // a quoted identifier
	tConst         // a literal or a parameter: "?" in the fingerprint
	tOp            // an operator
	tOpen          // (
	tClose         // )
	tLBrack        // [
	tRBrack        // ]
	tComma
	tSemi
	tDot
	tCast // ::
)

// analyze lexes sql once, following PostgreSQL's lexical rules closely enough to
// find every constant, comment and statement boundary, and returns what the replay
// needs of it together with its fingerprint, appended to fp[:0]. It never fails:
// an unterminated string or comment runs to the end of the text.
func analyze(sql string, fp []byte) (analysis, []byte) {
	var l lexer
	return l.analyze(sql, fp)
}

// analyze is analyze reusing l's memory.
func (l *lexer) analyze(sql string, fp []byte) (analysis, []byte) {
	frames := l.fp.frames[:0]
	*l = lexer{src: sql, fp: fingerprinter{out: fp[:0], frames: frames}}
	l.run()
	l.endStatement()
	l.fp.finish()
	a := l.a
	a.stmts = l.stmts
	if l.stmts == 0 {
		a.write = true // nothing to read: not a read
	}
	a.beginOnly = l.stmts == 1 && l.lastBegin
	a.rollbackOnly = l.stmts == 1 && l.lastRollback
	if l.stmts != 1 {
		a.copyIn, a.copyOut = false, false
	}
	return a, l.fp.out
}

// fingerprintOf returns the fingerprint of sql.
func fingerprintOf(sql string) string {
	_, fp := analyze(sql, nil)
	return string(fp)
}

type lexer struct {
	src string
	a   analysis
	fp  fingerprinter

	// The statement being read.
	stmts     int
	st        stmtState
	lastWord  int // start and end of the last word read, for function names
	lastWordE int
	prevKind  int
	prevKW    int

	lastBegin, lastRollback bool
}

// stmtState is what the classifier gathers of one statement.
type stmtState struct {
	tokens int
	depth  int
	// The first words at depth 0 (after leading parentheses): keyword ids and
	// positions, enough to tell BEGIN from START TRANSACTION, COMMIT PREPARED or SET
	// search_path.
	words   [6]int
	wordPos [6][2]int
	nwords  int
	// atomic counts open BEGIN ATOMIC … END bodies (and CASE … END inside them),
	// whose semicolons do not end the statement.
	atomic                                 int
	lock, modify, writeFunc, into          bool
	analyze, chain, hold, stdin, stdout    bool
	sessionLock, prevFor, prevFrom, prevTo bool
	started                                bool // a token other than ( was read
	prevAnd, prevNo, prevWith              bool
}

func (l *lexer) run() {
	s := l.src
	n := len(s)
	i := 0
	for i < n {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < n && s[i+1] == '-':
			for i < n && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && s[i+1] == '*':
			i = skipComment(s, i)
		case c == '\'':
			i = skipQuoted(s, i+1, '\'', false)
			l.token(tConst, i, i)
		case (c == 'E' || c == 'e') && i+1 < n && s[i+1] == '\'':
			i = skipQuoted(s, i+2, '\'', true)
			l.token(tConst, i, i)
		case (c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') && i+1 < n && s[i+1] == '\'':
			i = skipQuoted(s, i+2, '\'', false)
			l.token(tConst, i, i)
		case (c == 'U' || c == 'u') && i+2 < n && s[i+1] == '&' && s[i+2] == '\'':
			i = skipQuoted(s, i+3, '\'', false)
			l.token(tConst, i, i)
		case (c == 'U' || c == 'u') && i+2 < n && s[i+1] == '&' && s[i+2] == '"':
			start := i
			i = skipQuoted(s, i+3, '"', false)
			l.token(tQIdent, start, i)
		case c == '"':
			start := i
			i = skipQuoted(s, i+1, '"', false)
			l.token(tQIdent, start, i)
		case c == '$':
			if i+1 < n && isDigit(s[i+1]) {
				i++
				num := 0
				for i < n && isDigit(s[i]) {
					if num < 1<<20 {
						num = num*10 + int(s[i]-'0')
					}
					i++
				}
				l.a.params = max(l.a.params, num)
				l.token(tConst, i, i)
			} else if end, ok := dollarQuoted(s, i); ok {
				i = end
				l.token(tConst, i, i)
			} else {
				l.token(tOp, i, i+1)
				i++
			}
		case isDigit(c) || c == '.' && i+1 < n && isDigit(s[i+1]):
			i = skipNumber(s, i)
			l.token(tConst, i, i)
		case isIdentStart(c):
			start := i
			for i < n && isIdentChar(s[i]) {
				i++
			}
			l.token(tWord, start, i)
		case c == '(':
			l.token(tOpen, i, i+1)
			i++
		case c == ')':
			l.token(tClose, i, i+1)
			i++
		case c == '[':
			l.token(tLBrack, i, i+1)
			i++
		case c == ']':
			l.token(tRBrack, i, i+1)
			i++
		case c == ',':
			l.token(tComma, i, i+1)
			i++
		case c == ';':
			l.token(tSemi, i, i+1)
			i++
		case c == '.':
			l.token(tDot, i, i+1)
			i++
		case c == ':' && i+1 < n && s[i+1] == ':':
			l.token(tCast, i, i+2)
			i += 2
		case isOpChar(c):
			start := i
			special := false
			for i < n && isOpChar(s[i]) {
				// A comment starting inside an operator ends it.
				if i > start && i+1 < n && (s[i] == '-' && s[i+1] == '-' || s[i] == '/' && s[i+1] == '*') {
					break
				}
				switch s[i] {
				case '~', '!', '@', '#', '%', '^', '&', '|', '`', '?':
					special = true
				}
				i++
			}
			// As PostgreSQL lexes it, an operator ends in + or - only if it holds
			// one of ~!@#%^&|`?: "=-1" is "=" and "-1".
			for !special && i-start > 1 && (s[i-1] == '+' || s[i-1] == '-') {
				i--
			}
			l.token(tOp, start, i)
		default:
			// A byte PostgreSQL would reject (a backslash, a brace): one operator.
			l.token(tOp, i, i+1)
			i++
		}
	}
}

// token feeds one token to the classifier and the fingerprint. For constants,
// start and end are unused.
func (l *lexer) token(kind, start, end int) {
	kw := kwNone
	if kind == tWord {
		kw = keywordID(l.src[start:end])
	}
	if kind == tSemi && l.st.depth <= 0 && l.st.atomic == 0 {
		l.fp.token(tSemi, ";", kwNone)
		l.endStatement()
		l.prevKind, l.prevKW = tSemi, kwNone
		return
	}
	l.classify(kind, kw, start, end)
	var text string
	switch kind {
	case tConst:
		text = "?"
	default:
		text = l.src[start:end]
	}
	l.fp.token(kind, text, kw)
	if kind == tWord || kind == tQIdent {
		l.lastWord, l.lastWordE = start, end
	}
	l.prevKind, l.prevKW = kind, kw
}

// classify updates the statement's state with one token.
func (l *lexer) classify(kind, kw, start, end int) {
	st := &l.st
	st.tokens++
	switch kind {
	case tOpen:
		if l.prevKind == tWord {
			name := l.src[l.lastWord:l.lastWordE]
			if fn := lowerName(name); writeFuncs[fn] {
				st.writeFunc = true
				if sessionLockFuncs[fn] {
					st.sessionLock = true
				}
			}
		}
		st.depth++
	case tClose:
		st.depth--
	}
	// The first words at depth 0, or inside the parentheses a statement opens
	// with: (SELECT …) UNION (SELECT …).
	if kind == tWord && (st.depth <= 0 || !st.started) && st.nwords < len(st.words) {
		st.words[st.nwords] = kw
		st.wordPos[st.nwords] = [2]int{start, end}
		st.nwords++
	}
	if kind != tOpen {
		st.started = true
	}
	if kind != tWord {
		st.prevFor, st.prevFrom, st.prevTo, st.prevAnd, st.prevNo, st.prevWith = false, false, false, false, false, false
		return
	}
	switch kw {
	case kwUpdate, kwShare, kwKey:
		if st.prevFor {
			st.lock = true
		}
	case kwNo:
		if st.prevFor {
			st.lock = true
		}
	case kwInsert, kwDelete, kwMerge:
		st.modify = true
	case kwInto:
		if st.depth <= 0 {
			st.into = true
		}
	case kwAnalyze:
		st.analyze = true
	case kwChain:
		if st.prevAnd {
			st.chain = true
		}
	case kwHold:
		if st.prevWith {
			st.hold = true
		}
	case kwStdin:
		if st.prevFrom {
			st.stdin = true
		}
	case kwStdout:
		if st.prevTo {
			st.stdout = true
		}
	case kwAtomic:
		if l.prevKW == kwBegin && st.tokens > 2 {
			st.atomic++
		}
	case kwCase:
		if st.atomic > 0 {
			st.atomic++
		}
	case kwEnd:
		if st.atomic > 0 {
			st.atomic--
		}
	}
	if kw == kwUpdate && !st.prevFor {
		st.modify = true
	}
	st.prevFor = kw == kwFor
	st.prevFrom = kw == kwFrom
	st.prevTo = kw == kwTo
	st.prevAnd = kw == kwAnd
	st.prevNo = kw == kwNo
	st.prevWith = kw == kwWith
}

// endStatement classifies the statement just read and folds it into the text's
// analysis.
func (l *lexer) endStatement() {
	st := &l.st
	defer func() { l.st = stmtState{} }()
	if st.tokens == 0 {
		return
	}
	l.stmts++
	a := &l.a
	w := st.words
	word := func(i int) int {
		if i < st.nwords {
			return w[i]
		}
		return -1
	}
	text := func(i int) string {
		if i < st.nwords {
			return l.src[st.wordPos[i][0]:st.wordPos[i][1]]
		}
		return ""
	}
	first := word(0)
	read := false
	switch first {
	case kwSelect, kwValues, kwTable, kwWith:
		read = !st.lock && !st.writeFunc && !st.modify && !st.into
	case kwShow:
		read = true
	case kwExplain:
		// EXPLAIN without ANALYZE plans the statement but does not run it.
		read = !st.analyze || !st.lock && !st.writeFunc && !st.modify && !st.into
	}
	if !read {
		a.write = true
	}
	l.lastBegin, l.lastRollback = false, false
	switch first {
	case kwBegin:
		a.block = blockOpen
		l.lastBegin = true
	case kwStart:
		if word(1) == kwTransaction {
			a.block = blockOpen
			l.lastBegin = true
		}
	case kwCommit, kwEnd:
		switch {
		case word(1) == kwPrepared:
			a.commits = true
		case st.chain:
			a.commits = true
		default:
			a.commits = true
			a.block = blockClose
		}
	case kwRollback, kwAbort:
		switch {
		case word(1) == kwPrepared:
		case word(1) == kwTo || (word(1) == kwWork || word(1) == kwTransaction) && word(2) == kwTo:
			// ROLLBACK TO SAVEPOINT: the block goes on.
		case st.chain:
		default:
			a.block = blockClose
			l.lastRollback = true
		}
	case kwPrepare:
		if word(1) == kwTransaction {
			// The transaction is detached from the session, prepared for COMMIT
			// PREPARED from any session: the block ends here.
			a.block = blockClose
			a.commits = true
		} else {
			a.pin = pinSet
		}
	case kwCreate:
		for i := 1; i < st.nwords && i < 5; i++ {
			if w[i] == kwTemp || w[i] == kwTemporary {
				a.pin = pinSet
			}
		}
	case kwDeclare:
		if st.hold {
			a.pin = pinSet
		}
	case kwListen:
		a.pin = pinSet
	case kwSet:
		i := 1
		if word(1) == kwSession {
			i = 2
		}
		if word(1) != kwLocal && (word(i) == kwRole || word(i) == kwSchema ||
			word(i) == kwSession && word(i+1) == kwAuthorization || word(i) == kwAuthorization ||
			equalFold(text(i), "search_path")) {
			a.pin = pinSet
		}
	case kwDiscard:
		if word(1) == kwAll {
			a.pin = pinClear
			a.dropsPrepared = true
		}
	case kwDeallocate:
		if word(1) == kwAll || word(1) == kwPrepare && word(2) == kwAll {
			a.dropsPrepared = true
		}
	case kwCopy:
		a.copyIn = st.stdin
		a.copyOut = st.stdout
	}
	if st.sessionLock {
		a.pin = pinSet
	}
}
