package imapd

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzFetchCTE checks that the decoders invert standard encoders and never
// fail or loop on arbitrary input.
func FuzzFetchCTE(f *testing.F) {
	f.Add([]byte("hello\x00world\r\n"), "=3D=\r\nabc")
	f.Add([]byte{0xff, 0xfe}, "aGVsbG8=")
	f.Fuzz(func(t *testing.T, data []byte, junk string) {
		// base64 with line breaks every 76 characters.
		enc := base64.StdEncoding.EncodeToString(data)
		var wrapped strings.Builder
		for i := 0; i < len(enc); i += 76 {
			wrapped.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
		}
		r, _ := fetchCTEReader("BASE64", iotest.HalfReader(strings.NewReader(wrapped.String())))
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
			t.Errorf("base64 round trip: %q -> %q (%v)", data, got, err)
		}
		// quoted-printable, binary mode (CR and LF encoded).
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		w.Binary = true
		w.Write(data)
		w.Close()
		r, _ = fetchCTEReader("QUOTED-PRINTABLE", iotest.OneByteReader(bytes.NewReader(qp.Bytes())))
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
			t.Errorf("quoted-printable round trip: %q -> %q -> %q (%v)", data, qp.Bytes(), got, err)
		}
		// Arbitrary input: terminates, deterministic, bounded output.
		for _, enc := range []string{"BASE64", "QUOTED-PRINTABLE"} {
			r1, _ := fetchCTEReader(enc, strings.NewReader(junk))
			a, err := io.ReadAll(r1)
			if err != nil || len(a) > len(junk) {
				t.Errorf("%s %q: %d bytes, %v", enc, junk, len(a), err)
			}
			r2, _ := fetchCTEReader(enc, iotest.OneByteReader(strings.NewReader(junk)))
			if b, _ := io.ReadAll(r2); !bytes.Equal(a, b) {
				t.Errorf("%s %q: depends on reads: %q vs %q", enc, junk, a, b)
			}
		}
		h, err := io.ReadAll(newFetchHTMLText(strings.NewReader(junk)))
		if err != nil || len(h) > 4*len(junk)+8 {
			t.Errorf("html %q: %q %v", junk, h, err)
		}
	})
}

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

// FuzzSortBaseSubject checks that extraction terminates and is stable.
func FuzzSortBaseSubject(f *testing.F) {
	for _, s := range []string{"Re: [list] Fwd: x (fwd)", "[fwd: [fwd: a]]", "[]", "Re[2]:", "re re: re"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "=?") {
			return // decoding may reveal new encoded words
		}
		base, _ := sortBaseSubject(s)
		again, reply := sortBaseSubject(base)
		if again != base || reply {
			t.Errorf("%q -> %q -> %q (%v)", s, base, again, reply)
		}
	})
}

// FuzzThreadParseIDs checks the message-id scanner on arbitrary input.
func FuzzThreadParseIDs(f *testing.F) {
	f.Add("<a@b> <c@d>")
	f.Fuzz(func(t *testing.T, s string) {
		for _, id := range threadParseIDs(s) {
			if id == "" || strings.ContainsAny(id, "<> \t\r\n") {
				t.Errorf("%q: bad id %q", s, id)
			}
		}
	})
}
