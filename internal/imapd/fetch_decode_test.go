package imapd

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/jodmai/jodmai/internal/imapwire"
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
			r, ok := fetchCTEReader(tc.enc, src)
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
	if _, ok := fetchCTEReader("X-UUENCODE", strings.NewReader("")); ok || fetchKnownCTE("X-UUENCODE") {
		t.Error("x-uuencode accepted")
	}
}

func TestFetchQPLongLine(t *testing.T) {
	// Lines far longer than any buffer, and long runs of white space.
	in := strings.Repeat("ab=3D", 20000) + strings.Repeat(" ", 1000) + "x\r\n"
	r, _ := fetchCTEReader("QUOTED-PRINTABLE", strings.NewReader(in))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("ab=", 20000) + strings.Repeat(" ", 1000) + "x\r\n"
	if string(got) != want {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
}

func TestFetchFindPart(t *testing.T) {
	leaf := func(typ, sub string) *message.Part { return &message.Part{MediaType: typ, MediaSubtype: sub} }
	innerText := leaf("text", "plain")
	innerMsg := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Parts: []*message.Part{innerText}}
	rfc822 := &message.Part{MediaType: "message", MediaSubtype: "rfc822", Message: innerMsg}
	singleInner := leaf("text", "html")
	rfc822Single := &message.Part{MediaType: "message", MediaSubtype: "rfc822", Message: singleInner}
	a := leaf("text", "plain")
	root := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Parts: []*message.Part{a, rfc822, rfc822Single}}
	tests := []struct {
		path []uint32
		want *message.Part
	}{
		{nil, root},
		{[]uint32{1}, a},
		{[]uint32{2}, rfc822},
		{[]uint32{2, 1}, innerText},
		{[]uint32{3, 1}, singleInner},
		{[]uint32{3, 2}, nil},
		{[]uint32{1, 1}, nil},
		{[]uint32{4}, nil},
		{[]uint32{2, 1, 1}, nil},
	}
	for _, tc := range tests {
		if got := fetchFindPart(root, tc.path); got != tc.want {
			t.Errorf("path %v: got %p, want %p", tc.path, got, tc.want)
		}
	}
	// A single-part message: part 1 is the message itself.
	single := leaf("text", "plain")
	if fetchFindPart(single, []uint32{1}) != single || fetchFindPart(single, []uint32{2}) != nil {
		t.Error("single part message")
	}
}

func TestFetchPartial(t *testing.T) {
	tests := []struct {
		off, n  int64
		p       *imapwire.Partial
		wantOff int64
		wantN   int64
	}{
		{off: 100, n: 50, p: nil, wantOff: 100, wantN: 50},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 0, Count: 10}, wantOff: 100, wantN: 10},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 45, Count: 10}, wantOff: 145, wantN: 5},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 50, Count: 10}, wantOff: 150, wantN: 0},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 500, Count: 10}, wantOff: 150, wantN: 0},
	}
	for _, tc := range tests {
		got := fetchApplyPartial(fetchSpan{off: tc.off, n: tc.n}, tc.p)
		if got.off != tc.wantOff || got.n != tc.wantN {
			t.Errorf("%d+%d %v: got %d+%d, want %d+%d", tc.off, tc.n, tc.p, got.off, got.n, tc.wantOff, tc.wantN)
		}
	}
	mem := fetchApplyPartial(fetchSpan{data: []byte("Subject: x\r\n\r\n"), inMem: true}, &imapwire.Partial{Offset: 9, Count: 100})
	if string(mem.data) != "x\r\n\r\n" {
		t.Errorf("in memory: %q", mem.data)
	}
	if got := fetchApplyPartial(fetchSpan{missing: true}, &imapwire.Partial{Offset: 1, Count: 1}); !got.missing {
		t.Error("missing section lost")
	}
	// Offsets beyond the file are clamped.
	if off, n := fetchClamp(90, 50, 100); off != 90 || n != 10 {
		t.Errorf("clamp: %d %d", off, n)
	}
	if off, n := fetchClamp(-5, 500, 100); off != 0 || n != 100 {
		t.Errorf("clamp: %d %d", off, n)
	}
}

func TestFetchScanHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("y", 20000) + "\r\n"
	msg := "A: 1\r\n" + long + "B: 2\r\n\r\nbody\r\n"
	h, err := fetchScanHeader(strings.NewReader(msg), 1<<20)
	if err != nil || string(h) != msg[:len(msg)-len("body\r\n")] {
		t.Errorf("got %d bytes, %v", len(h), err)
	}
	// A line ending exactly at a buffer boundary is not a blank line.
	edge := "A: " + strings.Repeat("z", 8192-3) + "\r\n" + "B: 1\r\n\r\n"
	h, _ = fetchScanHeader(strings.NewReader(edge+"body"), 1<<20)
	if string(h) != edge {
		t.Errorf("boundary: got %d bytes, want %d", len(h), len(edge))
	}
	h, _ = fetchScanHeader(strings.NewReader(msg), 10)
	if string(h) != msg[:10] {
		t.Errorf("limit: %q", h)
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
		got, err := io.ReadAll(newFetchHTMLText(iotest.OneByteReader(strings.NewReader(tc.in))))
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q, want %q (%v)", tc.in, got, tc.want, err)
		}
	}
}

func TestFetchPreviewLimits(t *testing.T) {
	body := strings.Repeat("word ", 300)
	msg := "Subject: x\r\n\r\n" + body
	root := &message.Part{MediaType: "text", MediaSubtype: "plain", Encoding: "7BIT", BodyStart: 14, End: int64(len(msg))}
	got, err := fetchPreview(root, strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(got)); n != fetchPreviewChars || strings.HasSuffix(got, "  ") {
		t.Errorf("preview of %d chars: %q", n, got)
	}
	// Attachments and embedded messages give no preview.
	att := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Parts: []*message.Part{
		{MediaType: "text", MediaSubtype: "plain", Disposition: "attachment"},
		{MediaType: "message", MediaSubtype: "rfc822", Message: root},
	}}
	if p := fetchPreviewPart(att); p != nil {
		t.Errorf("picked %v", p)
	}
}

func TestFetchTopHeaderLen(t *testing.T) {
	long := strings.Repeat("x", 40000)
	for _, msg := range []string{
		"A: 1\r\nB: 2\r\n\r\nbody\r\n",
		"A: 1\nB: 2\n\nbody\n",
		"A: 1\r\n folded\r\n\r\n",
		"A: 1\r\nB: 2\r\n",
		"A: 1",
		"",
		"\r\nbody",
		"From someone Mon Jan  1\r\nA: 1\r\n\r\nbody",
		" leading space\r\n\r\nbody",
		"A: 1\r\nnot a field\r\n\r\nbody",
		"A: " + long + "\r\n\r\nbody",
		"A: " + long[:16384-5] + "\r\n\r\nbody",
		"A: " + long[:16384-3] + "\r\n\r\nbody",
		"X-Long: " + long + "\n\n\r\n",
		"A: 1\r\n \r\nB: 2\r\n\r\n",
	} {
		root, err := message.Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fetchTopHeaderLen(strings.NewReader(msg))
		if err != nil || got != root.BodyStart {
			t.Errorf("%.40q: got %d, parser says %d (%v)", msg, got, root.BodyStart, err)
		}
		fetchCheckHeaderEnd(t, msg, root.BodyStart)
	}
}

// fetchCheckHeaderEnd checks fetchHeaderEnd on every prefix length that
// FETCH may have read of msg.
func fetchCheckHeaderEnd(t *testing.T, msg string, want int64) {
	t.Helper()
	for _, n := range []int{len(msg), min(len(msg), 10), min(len(msg), fetchHeadSize), min(len(msg), 100)} {
		got, ok := fetchHeaderEnd([]byte(msg[:n]), n == len(msg))
		if ok && got != want {
			t.Errorf("%.40q (first %d bytes): got %d, parser says %d", msg, n, got, want)
		}
		if !ok && n == len(msg) && len(msg) < fetchHeadSize-1 {
			t.Errorf("%.40q: whole short message not settled", msg)
		}
	}
}

func FuzzFetchTopHeaderLen(f *testing.F) {
	f.Add("A: 1\r\n\r\nbody")
	f.Add("no header\r\n\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		root, err := message.Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fetchTopHeaderLen(strings.NewReader(msg))
		if err != nil || got != root.BodyStart {
			t.Errorf("%q: got %d, parser says %d (%v)", msg, got, root.BodyStart, err)
		}
		fetchCheckHeaderEnd(t, msg, root.BodyStart)
	})
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
				r, _ := fetchCTEReader(bc.enc, strings.NewReader(bc.in))
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
