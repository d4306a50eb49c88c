package thread

import (
	"strings"
	"testing"
)

// FuzzSortBaseSubject checks that extraction terminates and is stable.
func FuzzSortBaseSubject(f *testing.F) {
	for _, s := range []string{"Re: [list] Fwd: x (fwd)", "[fwd: [fwd: a]]", "[]", "Re[2]:", "re re: re"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "=?") {
			return // decoding may reveal new encoded words
		}
		base, _ := BaseSubject(s)
		again, reply := BaseSubject(base)
		if again != base || reply {
			t.Errorf("%q -> %q -> %q (%v)", s, base, again, reply)
		}
	})
}

// FuzzThreadParseIDs checks the message-id scanner on arbitrary input.
func FuzzThreadParseIDs(f *testing.F) {
	f.Add("<a@b> <c@d>")
	f.Fuzz(func(t *testing.T, s string) {
		for _, id := range ParseIDs(s) {
			if id == "" || strings.ContainsAny(id, "<> \t\r\n") {
				t.Errorf("%q: bad id %q", s, id)
			}
		}
	})
}
