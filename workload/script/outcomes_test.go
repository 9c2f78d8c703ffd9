package script

import (
	"testing"
)

func TestOutcomesTravel(t *testing.T) {
	var a, b Workload
	for i := range 9000 {
		var k [16]byte
		k[0], k[1], k[15] = byte(i), byte(i>>8), byte(i)
		a.log.add(k, i%5 == 0)
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
	if ac != bc || aa != ba || ac != 7200 {
		t.Fatalf("imported %d acknowledged, %d ambiguous; exported %d, %d", bc, ba, ac, aa)
	}
	if err := b.ImportOutcomes(data[:9]); err == nil {
		t.Error("a truncated export was accepted")
	}
}
