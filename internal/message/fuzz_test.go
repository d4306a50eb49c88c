package message

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add([]byte(tc.msg))
		f.Add([]byte(strings.ReplaceAll(tc.msg, "\r\n", "\n")))
	}
	f.Add([]byte(crlf("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/digest; boundary=a\n\n--a\n\nx\n--b--\n--a--\n")))
	f.Add([]byte("To: g: a@b, <c@d>;, \"q\\\"\" <e@f> (c), @x:y@z\r\nFrom: =?utf-8?q?x?= <>\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Parse of in-memory input failed: %v", err)
		}
		checkInvariants(t, data, root)

		// FilterHeader partitions the header's fields.
		hdr := data[root.HeaderStart:root.BodyStart]
		names := []string{"subject", "Content-Type", "x"}
		in, out := FilterHeader(hdr, names, false), FilterHeader(hdr, names, true)
		if all := FilterHeader(hdr, nil, true); len(in)+len(out) != len(all) || len(all) > len(hdr) {
			t.Fatalf("FilterHeader: %d + %d bytes selected of %d (header %d)", len(in), len(out), len(all), len(hdr))
		}
	})
}

func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{
		"", "a@b", `"x, y" <a@b>, g: c@d, <@r,@s:e@f>;`, "0)lice <", "(c) a@b (d)", "[x", `"\`, "a@b@c",
		"=?utf-8?q?x?= <a@b>", "g:;h:;", ";;,,::<<>>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := ParseAddressList(s)
		checkAddresses(t, l)
		for _, a := range l {
			if !a.IsGroupStart() && !a.IsGroupEnd() && (a.Mailbox == "" || a.Host == "") {
				t.Fatalf("ordinary address with empty part: %+v", a)
			}
		}
	})
}

func FuzzParseMediaType(f *testing.F) {
	for _, s := range []string{
		"text/plain; charset=utf-8", `multipart/mixed; boundary="a\"b"`, "a/b; n*0*=utf-8''%E2; n*1=x; n*=y",
		"(c) a/b (c); k=(v)", "a/b; k*99999*=x", `a/b; k="unterminated`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, sub, params, ok := parseMediaType(s)
		if ok != (typ != "" && sub != "") {
			t.Fatalf("ok=%v with %q/%q", ok, typ, sub)
		}
		seen := map[string]bool{}
		for _, p := range params {
			if p.Key == "" || p.Key != strings.ToLower(p.Key) || seen[p.Key] {
				t.Fatalf("bad or duplicate key %q in %+v", p.Key, params)
			}
			seen[p.Key] = true
		}
	})
}

func FuzzCRLFWriter(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\rd\n"), uint8(1), uint8(3))
	f.Add([]byte("\r\n\r\n"), uint8(1), uint8(1))
	f.Add([]byte("\r"), uint8(0), uint8(0))
	f.Add([]byte("x\r\r\n\n\r"), uint8(2), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, seed, step uint8) {
		want := crlfReference(in)

		var whole bytes.Buffer
		if _, err := NewCRLFWriter(&whole).Write(in); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole.Bytes(), want) {
			t.Fatalf("one write: got %q, want %q", whole.Bytes(), want)
		}

		// The same input in chunks whose sizes cycle from the fuzzed seed.
		var split bytes.Buffer
		w := NewCRLFWriter(&split)
		size := int(seed)
		for rest := in; len(rest) > 0; {
			if size%5 == 0 {
				w.Write(nil) // empty writes must not disturb the state
			}
			n := min(size%7+1, len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
			size += int(step) + 1
		}
		if !bytes.Equal(split.Bytes(), want) {
			t.Fatalf("split writes: got %q, want %q", split.Bytes(), want)
		}

		out := whole.Bytes()
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
		// Idempotent, and removing the added CRs gives the input back.
		var again bytes.Buffer
		NewCRLFWriter(&again).Write(out)
		if !bytes.Equal(again.Bytes(), out) {
			t.Fatalf("not idempotent: %q -> %q", out, again.Bytes())
		}
	})
}
