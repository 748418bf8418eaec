package spool

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Damage never wedges the spool and is never just deleted: a line that is
// not a result and a torn last line are kept in the segment's .damaged
// file, counted in meridian_agent_spool_damaged_total, and every result
// around them is still handed out.
func TestDamageIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	rs := newResults(3)
	mustAppend(t, s, rs[:1])
	s.Close()
	seg := filepath.Join(dir, segName(1))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("z\"v\":1,\"id\";\"flipped\"}\n") // bits flipped: not JSON
	f.Close()
	s = mustOpen(t, dir, Options{})
	mustAppend(t, s, rs[1:2])
	s.Close()
	f, _ = os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"v":1,"id":"cut-in-half`) // the file was cut
	f.Close()

	before := damagedTotal.Get()
	s = mustOpen(t, dir, Options{})
	mustAppend(t, s, rs[2:])
	equalIDs(t, "around the damage", drain(t, s, 100), idsOf(rs))
	if got := damagedTotal.Get() - before; got != 2 {
		t.Errorf("meridian_agent_spool_damaged_total grew by %d, want 2", got)
	}
	kept, err := os.ReadFile(seg + damagedSuffix)
	if want := "z\"v\":1,\"id\";\"flipped\"}\n{\"v\":1,\"id\":\"cut-in-half\n"; err != nil || !slices.Equal(sortedLines(string(kept)), sortedLines(want)) {
		t.Errorf("%s: got %q (%v), want both damaged lines", segName(1)+damagedSuffix, kept, err)
	}
	// The quarantine file is not a segment: a restart reads nothing from it.
	s.Close()
	s = mustOpen(t, dir, Options{})
	if n := s.Len(); n != 0 {
		t.Errorf("after a restart: %d results pending, want 0", n)
	}
}

// sortedLines splits s into lines and sorts them: the torn tail is kept
// when the spool opens, the damaged line when it is acked.
func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}
