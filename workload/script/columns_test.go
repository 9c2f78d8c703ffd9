package script

import (
	"strings"
	"testing"
)

func TestResultColumns(t *testing.T) {
	tests := []struct {
		sql  string
		want string // names joined with |, or "?" when unknown
	}{
		{"SELECT 1", "?column?"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = $1", "abalance"},
		{"select a.Balance, B, \"MixedCase\", t.\"x y\" from t a", "balance|b|MixedCase|x y"},
		{"SELECT count(*), max(x) AS top, sum(y) total, now() FROM t", "count|top|total|now"},
		{"SELECT pg_catalog.upper($1), coalesce(a, 0), EXISTS (SELECT 1), ARRAY[1, 2], ROW(1, 2)", "upper|coalesce|exists|array|row"},
		{"SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END, CASE WHEN b THEN 2 END AS c2", "case|c2"},
		{"SELECT a + 1, -a, a IS NULL, NOT b, a || 'x', $1, 'lit', 2.5, NULL, true", "?column?|?column?|?column?|?column?|?column?|?column?|?column?|?column?|?column?|bool"},
		{"SELECT a::int, t.b::numeric(10, 2), c::text AS d", "a|b|d"},
		{"SELECT DISTINCT a FROM t UNION SELECT b FROM u", "a"},
		{"SELECT ALL a, b FROM t ORDER BY 1 LIMIT 1", "a|b"},
		{"SELECT FROM t", ""},
		{"SELECT substring(a from 1 for 2), position('a' in b) FROM t", "substring|position"},
		{"SELECT a + b c, a IS NOT NULL d, x IN (1, 2) e, CASE WHEN a THEN 1 END f, 'x' \"G\", $1 h, 1 year", "c|d|e|f|G|h|year"},
		{"SELECT a::text::int, b::varchar(10)[], c::pg_catalog.int4", "a|b|c"},
		{"WITH x AS (SELECT 1 AS a), y AS MATERIALIZED (SELECT 2) SELECT a, b FROM x, y", "a|b"},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING id, v AS value", "id|value"},
		{"INSERT INTO t VALUES ($1)", ""},
		{"UPDATE t SET v = v + 1 WHERE id = $1 RETURNING v", "v"},
		{"DELETE FROM t WHERE id = 1 RETURNING t.id", "id"},
		{"BEGIN", ""},
		{"SELECT 1 AS a; SELECT 2 AS b", "a|b"},
		// what it does not work out
		{"SELECT * FROM t", "?"},
		{"SELECT t.* FROM t", "?"},
		{"SELECT (SELECT 1)", "?"},
		{"SELECT 1::int", "?"},
		{"SELECT a::int y", "?"},
		{"SELECT a::double precision", "?"},
		{"SELECT interval '1' day", "?"},
		{"SELECT date '2020-01-01' d", "?"},
		{"SELECT a[1]", "?"},
		{"SELECT extract(year from now())", "?"},
		{"SELECT sum(x) OVER w FROM t WINDOW w AS ()", "?"},
		{"SELECT (a + b)::int", "?"},
		{"SELECT trim(a)", "?"},
		{"SELECT a COLLATE \"C\"", "?"},
		{"SELECT now() AT TIME ZONE 'utc'", "?"},
		{"SELECT count(*) FILTER (WHERE a) FROM t", "?"},
		{"SELECT DISTINCT ON (a) a FROM t", "?"},
		{"VALUES (1, 2)", "?"},
		{"TABLE t", "?"},
		{"SHOW work_mem", "?"},
		{"(SELECT 1)", "?"},
	}
	for _, tt := range tests {
		names, known := resultColumns(tt.sql, false)
		got := strings.Join(names, "|")
		if !known {
			got = "?"
		}
		if got != tt.want {
			t.Errorf("%s: columns %q, want %q", tt.sql, got, tt.want)
		}
	}
	if names, known := resultColumns("SELECT 1 AS a; SELECT 2 AS b", true); !known || strings.Join(names, "|") != "b" {
		t.Errorf("last statement's columns: %v, %v", names, known)
	}
}
