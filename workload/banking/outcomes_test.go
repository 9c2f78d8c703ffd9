package banking

import (
	"reflect"
	"testing"
)

// The writes one process exports are what another imports: a sharded run's
// coordinator checks every shard's acknowledged writes.
func TestOutcomesTravel(t *testing.T) {
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20000 { // more than one chunk
		var k [16]byte
		k[0], k[1], k[15] = byte(i), byte(i>>8), byte(i>>16)
		a.log.add(k, kindTransfer+byte(i%4), int64(i)-5000, i%7 == 0)
	}
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := a.ExportOutcomes()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ImportOutcomes(data); err != nil {
		t.Fatal(err)
	}
	ac, aa := a.log.counts()
	bc, ba := b.log.counts()
	if ac != bc || aa != ba {
		t.Fatalf("imported %d acknowledged, %d ambiguous; exported %d, %d", bc, ba, ac, aa)
	}
	set := func(w *Workload) map[entry]bool {
		m := map[entry]bool{}
		for _, c := range w.log.snapshot() {
			for _, e := range c {
				m[e] = true
			}
		}
		return m
	}
	if !reflect.DeepEqual(set(a), set(b)) {
		t.Error("the imported entries differ from the exported ones")
	}
	if err := b.ImportOutcomes(data[:25]); err == nil {
		t.Error("a truncated export was accepted")
	}
}
