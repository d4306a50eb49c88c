package imapd

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzSearchScanner checks the chunked scanner against a plain search of
// the folded text.
func FuzzSearchScanner(f *testing.F) {
	f.Add("Grüße aus Köln", "KÖLN", 3)
	f.Add("abc", "", 1)
	f.Fuzz(func(t *testing.T, text, needle string, chunk int) {
		if chunk <= 0 || chunk > 64 {
			chunk = 1 + (chunk&63+64)%64
		}
		nd := searchFoldString(strings.ToValidUTF8(needle, "\uFFFD"))
		sc := newSearchScanner([][]byte{nd})
		b := []byte(text)
		for len(b) > 0 {
			n := min(chunk, len(b))
			sc.Write(b[:n])
			b = b[n:]
		}
		sc.flush()
		want := bytes.Contains(searchFold(nil, []byte(text)), nd)
		if sc.found[0] != want {
			t.Errorf("%q in %q (chunks of %d): got %v, want %v", needle, text, chunk, sc.found[0], want)
		}
	})
}
