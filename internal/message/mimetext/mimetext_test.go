package mimetext

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/jodmai/jodmai/internal/message"
)

func TestFetchCTEReader(t *testing.T) {
	tests := []struct {
		enc, in, want string
	}{
		{"7BIT", "plain\r\ntext", "plain\r\ntext"},
		{"", "x", "x"},
		{"BASE64", "aGVsbG8gd29ybGQ=", "hello world"},
		{"base64", "aGVs\r\nbG8g\r\nd29y\r\nbGQ=\r\n", "hello world"},
		// Junk outside the alphabet is skipped; "=" ends the data; a final
		// partial group yields what it holds.
		{"BASE64", "aGV*sbG8#", "hello"},
		{"BASE64", "aGVsbG8=aGVsbG8=", "hello"},
		{"BASE64", "aGVsbA", "hell"},
		{"BASE64", "aGVsbG", "hell"},
		{"BASE64", "", ""},
		{"QUOTED-PRINTABLE", "caf=C3=A9 =\r\nsuite", "café suite"},
		{"QUOTED-PRINTABLE", "soft=  \r\nbreak=\nhere", "softbreakhere"},
		// Trailing white space before a line end goes (RFC 2045 rule 3).
		{"QUOTED-PRINTABLE", "a  \r\nb\t\nc ", "a\r\nb\nc"},
		// A stray "=" and lowercase hex.
		{"QUOTED-PRINTABLE", "1+1=2 =e9=ZZ", "1+1=2 \xe9=ZZ"},
		{"QUOTED-PRINTABLE", "end=", "end"},
		{"QUOTED-PRINTABLE", "ctl\x01ok", "ctl\x01ok"},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.in)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			r, ok := CTEReader(tc.enc, src)
			if !ok {
				t.Fatalf("%s: unknown", tc.enc)
			}
			// Read in small pieces too, so buffering is exercised.
			var got bytes.Buffer
			buf := make([]byte, 3)
			for {
				n, err := r.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if got.String() != tc.want {
				t.Errorf("%s %q (one byte %v): got %q, want %q", tc.enc, tc.in, oneByte, got.String(), tc.want)
			}
		}
	}
	if _, ok := CTEReader("X-UUENCODE", strings.NewReader("")); ok || KnownCTE("X-UUENCODE") {
		t.Error("x-uuencode accepted")
	}
}

func TestFetchQPLongLine(t *testing.T) {
	// Lines far longer than any buffer, and long runs of white space.
	in := strings.Repeat("ab=3D", 20000) + strings.Repeat(" ", 1000) + "x\r\n"
	r, _ := CTEReader("QUOTED-PRINTABLE", strings.NewReader(in))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("ab=", 20000) + strings.Repeat(" ", 1000) + "x\r\n"
	if string(got) != want {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
}

func TestFetchHTMLText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<p>a</p><p>b</p>", " a  b "},
		{"a<b>b</b>c", "abc"},
		{`<a href="x>y">link</a>`, "link"},
		{"<SCRIPT>if (a<b) x()</SCRIPT>after", "after"},
		{"<style type=text/css>p{}</style>x", "x"},
		{"x<!-- <p>hidden</p> -->y", "xy"},
		{"&lt;tag&gt; &amp;amp; &#233;&#xe9; &bogus; &", "<tag> &amp; éé &bogus; &"},
	}
	for _, tc := range tests {
		got, err := io.ReadAll(newHTMLText(iotest.OneByteReader(strings.NewReader(tc.in))))
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q, want %q (%v)", tc.in, got, tc.want, err)
		}
	}
}

func TestFetchPreviewLimits(t *testing.T) {
	body := strings.Repeat("word ", 300)
	msg := "Subject: x\r\n\r\n" + body
	root := &message.Part{MediaType: "text", MediaSubtype: "plain", Encoding: "7BIT", BodyStart: 14, End: int64(len(msg))}
	got, err := Preview(root, strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(got)); n != previewChars || strings.HasSuffix(got, "  ") {
		t.Errorf("preview of %d chars: %q", n, got)
	}
	// Attachments and embedded messages give no preview.
	att := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Parts: []*message.Part{
		{MediaType: "text", MediaSubtype: "plain", Disposition: "attachment"},
		{MediaType: "message", MediaSubtype: "rfc822", Message: root},
	}}
	if p := previewPart(att); p != nil {
		t.Errorf("picked %v", p)
	}
}

func BenchmarkFetchCTE(b *testing.B) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	var b64 strings.Builder
	enc := base64.StdEncoding.EncodeToString(data)
	for i := 0; i < len(enc); i += 76 {
		b64.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte(strings.Repeat("Grüße aus der schönen Stadt, noch einmal und noch einmal.\r\n", 18000)))
	w.Close()
	for _, bc := range []struct{ enc, in string }{{"BASE64", b64.String()}, {"QUOTED-PRINTABLE", qp.String()}} {
		b.Run(bc.enc, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			for range b.N {
				r, _ := CTEReader(bc.enc, strings.NewReader(bc.in))
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

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
		r, _ := CTEReader("BASE64", iotest.HalfReader(strings.NewReader(wrapped.String())))
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
			t.Errorf("base64 round trip: %q -> %q (%v)", data, got, err)
		}
		// quoted-printable, binary mode (CR and LF encoded).
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		w.Binary = true
		w.Write(data)
		w.Close()
		r, _ = CTEReader("QUOTED-PRINTABLE", iotest.OneByteReader(bytes.NewReader(qp.Bytes())))
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
			t.Errorf("quoted-printable round trip: %q -> %q -> %q (%v)", data, qp.Bytes(), got, err)
		}
		// Arbitrary input: terminates, deterministic, bounded output.
		for _, enc := range []string{"BASE64", "QUOTED-PRINTABLE"} {
			r1, _ := CTEReader(enc, strings.NewReader(junk))
			a, err := io.ReadAll(r1)
			if err != nil || len(a) > len(junk) {
				t.Errorf("%s %q: %d bytes, %v", enc, junk, len(a), err)
			}
			r2, _ := CTEReader(enc, iotest.OneByteReader(strings.NewReader(junk)))
			if b, _ := io.ReadAll(r2); !bytes.Equal(a, b) {
				t.Errorf("%s %q: depends on reads: %q vs %q", enc, junk, a, b)
			}
		}
		h, err := io.ReadAll(newHTMLText(strings.NewReader(junk)))
		if err != nil || len(h) > 4*len(junk)+8 {
			t.Errorf("html %q: %q %v", junk, h, err)
		}
	})
}
