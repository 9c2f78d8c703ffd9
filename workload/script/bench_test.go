package script

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
	"github.com/rehearse-dev/rehearse/workload/tpcb"
)

// BenchmarkTPCB runs pgbench's TPC-B-like transaction through the built-in tpcb
// workload and through this workload running pgbench's own script, on the same
// server, tables and connection. Each reports transactions per second. Run them
// several times (-count) and compare: the server's round trips dominate, so the
// spread between runs is wider than the difference between the two.
func BenchmarkTPCB(b *testing.B) {
	ctx := context.Background()
	srv := pgtest.Start(b)
	pool := newPool(b, srv.DSN)
	builtin, err := tpcb.New(tpcb.Config{Scale: 1}, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := builtin.Setup(ctx, pool, io.Discard); err != nil {
		b.Fatal(err)
	}
	scripted, err := New(Config{Scripts: []ScriptFile{{File: "testdata/tpcb-like.sql", Weight: 1}}, Scale: 1})
	if err != nil {
		b.Fatal(err)
	}
	conn := dial(b, srv.DSN)
	for _, bm := range []struct {
		name string
		w    workload.Workload
	}{{"builtin", builtin}, {"script", scripted}} {
		b.Run(bm.name, func(b *testing.B) {
			// Each starts from the same state: no history, freshly vacuumed tables,
			// no dirty buffers.
			for _, q := range []string{"TRUNCATE pgbench_history", "VACUUM ANALYZE pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history", "CHECKPOINT"} {
				if _, err := pool.Exec(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			r := rand.New(rand.NewPCG(1, 1))
			s := bm.w.NewSession(0, r)
			b.ReportAllocs()
			for b.Loop() {
				op := bm.w.Ops()[bm.w.Next(&s, r)]
				if err := op.Run(ctx, conn, &s, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
		})
	}
}

// BenchmarkTPCBScriptClient measures the client side of an execution of the
// TPC-B-like script without the server: drawing the script, evaluating its four
// \set commands and laying out the parameters of its statements.
func BenchmarkTPCBScriptClient(b *testing.B) {
	w, err := New(Config{Scripts: []ScriptFile{{File: "testdata/tpcb-like.sql", Weight: 1}}, Scale: 1})
	if err != nil {
		b.Fatal(err)
	}
	sc := w.scripts[0]
	s := w.NewSession(0, nil)
	b.ReportAllocs()
	for b.Loop() {
		f := w.frames.Get().(*frame)
		f.begin(w, &s, sc)
		for i := range sc.prog {
			in := &sc.prog[i]
			switch in.op {
			case opSet:
				v, err := f.ev.eval(in.expr)
				if err != nil {
					b.Fatal(err)
				}
				f.slots[in.slot] = v
			case opSQL:
				if _, err := f.layoutParams(in.stmt, w.sym.names); err != nil {
					b.Fatal(err)
				}
			}
		}
		s.Token = int64(f.rng.s)
		w.frames.Put(f)
	}
}

// BenchmarkTPCBAlternating runs the built-in transaction and the script's in
// turn on one connection, timing each, so that whatever else loads the machine
// weighs on both alike; it reports each one's transactions per second and their
// ratio (script / built-in).
func BenchmarkTPCBAlternating(b *testing.B) {
	ctx := context.Background()
	srv := pgtest.Start(b)
	pool := newPool(b, srv.DSN)
	builtin, err := tpcb.New(tpcb.Config{Scale: 1}, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := builtin.Setup(ctx, pool, io.Discard); err != nil {
		b.Fatal(err)
	}
	scripted, err := New(Config{Scripts: []ScriptFile{{File: "testdata/tpcb-like.sql", Weight: 1}}, Scale: 1})
	if err != nil {
		b.Fatal(err)
	}
	conn := dial(b, srv.DSN)
	r := rand.New(rand.NewPCG(1, 1))
	ws := [2]workload.Workload{builtin, scripted}
	sessions := [2]workload.Session{builtin.NewSession(0, r), scripted.NewSession(0, r)}
	var spent [2]time.Duration
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for k := range 2 {
			j := (i + k) % 2 // alternate which goes first
			start := time.Now()
			if err := ws[j].Ops()[ws[j].Next(&sessions[j], r)].Run(ctx, conn, &sessions[j], r); err != nil {
				b.Fatal(err)
			}
			spent[j] += time.Since(start)
		}
		i++
	}
	builtinTPS, scriptTPS := float64(i)/spent[0].Seconds(), float64(i)/spent[1].Seconds()
	b.ReportMetric(builtinTPS, "builtin-tx/s")
	b.ReportMetric(scriptTPS, "script-tx/s")
	b.ReportMetric(scriptTPS/builtinTPS, "script/builtin")
}
