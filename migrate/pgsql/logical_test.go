package pgsql

import (
	"slices"
	"strings"
	"testing"
)

func TestRestoreListDropsTheDDLTrigger(t *testing.T) {
	toc := `;
; Selected TOC Entries:
;
216; 1259 16386 TABLE public t postgres
215; 1259 16385 SEQUENCE public t_id_seq postgres
3205; 2606 16391 CONSTRAINT public t t_pkey postgres
3202; 3466 16401 EVENT TRIGGER - rehearse_bg_ddl postgres
3203; 3466 16402 EVENT TRIGGER - audit_ddl postgres
`
	got := RestoreList(toc)
	if strings.Contains(got, "rehearse_bg_ddl") {
		t.Errorf("the deployment's trigger is restored:\n%s", got)
	}
	for _, keep := range []string{"TABLE public t postgres", "SEQUENCE public t_id_seq", "t_pkey", "EVENT TRIGGER - audit_ddl"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q is lost:\n%s", keep, got)
		}
	}
}

func TestDumpArgs(t *testing.T) {
	args := DumpArgs("127.9.9.2", 5432, "postgres", "rehearse", "/tmp/x.dump")
	for _, want := range []string{"--schema-only", "--no-publications", "--no-subscriptions", "-Fc"} {
		if !slices.Contains(args, want) {
			t.Errorf("%v lacks %s", args, want)
		}
	}
	if i := slices.Index(args, "-N"); i < 0 || args[i+1] != DDLSchema {
		t.Errorf("%v does not leave out %s", args, DDLSchema)
	}
}
