package mailfile

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

type readMsg struct {
	sender string
	date   time.Time
	body   string
	flags  Flags
	offset int64
}

// readAll reads every message of an mbox file.
func readAll(t testing.TB, r io.Reader) ([]readMsg, error) {
	mr := NewMboxReader(r)
	var out []readMsg
	for i := 0; i < 10000; i++ {
		m, err := mr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(m)
		if err != nil {
			return out, err
		}
		if m.Size() != int64(len(b)) {
			t.Errorf("Size %d, read %d", m.Size(), len(b))
		}
		out = append(out, readMsg{m.Sender, m.Date, string(b), m.Flags(), m.Offset})
	}
	t.Fatal("too many messages")
	return nil, nil
}

func TestMboxReader(t *testing.T) {
	d := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want []readMsg
		err  string
	}{
		{name: "empty file", in: ""},
		{name: "only empty lines", in: "\n\n"},
		{name: "not mbox", in: "Subject: x\n\nhi\n", err: "not an mbox"},
		{name: "one message", in: "From a@b Mon Mar  4 05:06:07 2024\nSubject: x\n\nhi\n\n",
			want: []readMsg{{sender: "a@b", date: d, body: "Subject: x\n\nhi\n"}}},
		{name: "no separator line (mboxo)", in: "From a Mon Mar  4 05:06:07 2024\nS: 1\n\none\nFrom b Mon Mar  4 05:06:07 2024\nS: 2\n\ntwo\n",
			want: []readMsg{{sender: "a", date: d, body: "S: 1\n\none\n"}, {sender: "b", date: d, body: "S: 2\n\ntwo\n"}}},
		{name: "last without newline", in: "From a Mon Mar  4 05:06:07 2024\nS: 1\n\none\n\nFrom b Mon Mar  4 05:06:07 2024\nS: 2\n\ntwo",
			want: []readMsg{{sender: "a", date: d, body: "S: 1\n\none\n"}, {sender: "b", date: d, body: "S: 2\n\ntwo"}}},
		{name: "quoted From lines", in: "From a Mon Mar  4 05:06:07 2024\nS: 1\n\n>From here\n>>From there\n>>>From x\nFrom\n> From y\n>Fromage\n\n",
			want: []readMsg{{sender: "a", date: d, body: "S: 1\n\nFrom here\n>From there\n>>From x\nFrom\n> From y\n>Fromage\n"}}},
		{name: "trailing empty lines kept but one", in: "From a Mon Mar  4 05:06:07 2024\nS: 1\n\nx\n\n\n\nFrom b Mon Mar  4 05:06:07 2024\n\n",
			want: []readMsg{{sender: "a", date: d, body: "S: 1\n\nx\n\n\n"}, {sender: "b", date: d, body: ""}}},
		{name: "empty message", in: "From a Mon Mar  4 05:06:07 2024\nFrom b Mon Mar  4 05:06:07 2024\n",
			want: []readMsg{{sender: "a", date: d}, {sender: "b", date: d}}},
		{name: "crlf", in: "From a Mon Mar  4 05:06:07 2024\r\nS: 1\r\n\r\n>From x\r\n\r\nFrom b Mon Mar  4 05:06:07 2024\r\nS: 2\r\n\r\ny\r\n\r\n",
			want: []readMsg{{sender: "a", date: d, body: "S: 1\r\n\r\nFrom x\r\n"}, {sender: "b", date: d, body: "S: 2\r\n\r\ny\r\n"}}},
		{name: "status flags", in: "From a Mon Mar  4 05:06:07 2024\nStatus: RO\nX-Status: AFT\nSubject: x\n\nStatus: D\n\n",
			want: []readMsg{{sender: "a", date: d, body: "Status: RO\nX-Status: AFT\nSubject: x\n\nStatus: D\n", flags: Seen | Answered | Flagged | Draft}}},
		{name: "content-length ignored", in: "From a Mon Mar  4 05:06:07 2024\nContent-Length: 1\n\nabc\nFrom b Mon Mar  4 05:06:07 2024\n\nx\n",
			want: []readMsg{{sender: "a", date: d, body: "Content-Length: 1\n\nabc\n"}, {sender: "b", date: d, body: "\nx\n"}}},
		{name: "bad date", in: "From a whenever\n\nx\n", want: []readMsg{{sender: "a", body: "\nx\n"}}},
		{name: "leading empty lines", in: "\nFrom a Mon Mar  4 05:06:07 2024\n\nx\n", want: []readMsg{{sender: "a", date: d, body: "\nx\n", offset: 1}}},
	}
	for _, tc := range tests {
		for _, reader := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"bytewise", iotest.OneByteReader}} {
			t.Run(tc.name+"/"+reader.name, func(t *testing.T) {
				got, err := readAll(t, reader.wrap(strings.NewReader(tc.in)))
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("err %v, want %q", err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d messages %+v, want %d", len(got), got, len(tc.want))
				}
				for i := range got {
					if i > 0 {
						// The offset of the line "From <sender> ".
						tc.want[i].offset = int64(strings.Index(tc.in, "\nFrom "+tc.want[i].sender+" ") + 1)
					}
					if got[i] != tc.want[i] {
						t.Errorf("message %d:\n got %+v\nwant %+v", i+1, got[i], tc.want[i])
					}
				}
			})
		}
	}
}

func TestMboxReaderLongLines(t *testing.T) {
	// Lines longer than the read buffer stream through in pieces; a
	// piece that happens to start with "From " is not a separator.
	long := strings.Repeat("x", mboxBuffer-3) + "From me\n"
	longFrom := "From a Mon Mar  4 05:06:07 2024 " + strings.Repeat("y", 2*mboxBuffer)
	in := "From a Mon Mar  4 05:06:07 2024\nS: 1\n\n" + long + "\n" + longFrom + "\n\nz\n"
	got, err := readAll(t, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].body != "S: 1\n\n"+long || got[1].body != "\nz\n" || got[1].sender != "a" {
		t.Fatalf("got %d messages", len(got))
	}
}

// TestMboxRoundTrip: what MboxWriter writes reads back to the same
// messages, and a canonical file rewrites to the same bytes.
func TestMboxRoundTrip(t *testing.T) {
	d := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	bodies := []string{
		"S: 1\n\nFrom here\n>From there\nFrom\n",
		"",
		"S: 3\n\n\n\n",
		"From x\n>>From y\nFrom",
		"S: 4\n\nno newline at the end",
	}
	var buf bytes.Buffer
	w := NewMboxWriter(&buf)
	for _, b := range bodies {
		mw, err := w.Begin("", d)
		if err != nil {
			t.Fatal(err)
		}
		// Byte by byte, so the quoting sees every split.
		for i := 0; i < len(b); i++ {
			if _, err := mw.Write([]byte{b[i]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(buf.Len()) {
		t.Errorf("Written %d, file %d", w.Written(), buf.Len())
	}
	file := buf.String()
	wantFile := "From MAILER-DAEMON Mon Mar  4 05:06:07 2024\nS: 1\n\n>From here\n>>From there\nFrom\n\n" +
		"From MAILER-DAEMON Mon Mar  4 05:06:07 2024\n\n" +
		"From MAILER-DAEMON Mon Mar  4 05:06:07 2024\nS: 3\n\n\n\n\n" +
		"From MAILER-DAEMON Mon Mar  4 05:06:07 2024\n>From x\n>>>From y\nFrom\n\n" +
		"From MAILER-DAEMON Mon Mar  4 05:06:07 2024\nS: 4\n\nno newline at the end"
	if file != wantFile {
		t.Fatalf("file:\n%q\nwant\n%q", file, wantFile)
	}
	got, err := readAll(t, strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bodies) {
		t.Fatalf("read back %d messages", len(got))
	}
	for i, b := range bodies {
		want := b
		if i == 3 {
			want += "\n" // not the last: gains the newline mbox needs
		}
		if got[i].body != want || !got[i].date.Equal(d) || got[i].sender != "MAILER-DAEMON" {
			t.Errorf("message %d: %+v, want body %q", i+1, got[i], want)
		}
	}
}

func TestParseFromLine(t *testing.T) {
	utc := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		line, sender string
		date         time.Time
	}{
		{"From MAILER-DAEMON Mon Mar  4 05:06:07 2024", "MAILER-DAEMON", utc},
		{"From a@b.c Mon Mar 4 05:06:07 2024", "a@b.c", utc},
		{"From a@b.c Mon Mar  4 05:06:07 2024 +0100", "a@b.c", utc.Add(-time.Hour)},
		{"From a@b.c Mon Mar 14 05:06:07 2024", "a@b.c", utc.AddDate(0, 0, 10)},
		{"From a@b.c  Mon Mar  4 05:06:07 2024", "a@b.c", utc},
		{"From a@b.c", "a@b.c", time.Time{}},
		{"From a@b.c garbage", "a@b.c", time.Time{}},
		{"From ", "", time.Time{}},
		{"Subject: x", "", time.Time{}},
	}
	for _, tc := range tests {
		s, d := ParseFromLine(tc.line)
		if s != tc.sender || !d.Equal(tc.date) {
			t.Errorf("ParseFromLine(%q) = %q, %v; want %q, %v", tc.line, s, d, tc.sender, tc.date)
		}
	}
}

func TestToLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\nb\n"},
		{"a\rb\n\r", "a\rb\n\r"},
		{"\r\n\r\n", "\n\n"},
		{"", ""},
	}
	for _, tc := range tests {
		for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.HalfReader} {
			b, err := io.ReadAll(ToLF(wrap(strings.NewReader(tc.in))))
			if err != nil || string(b) != tc.want {
				t.Errorf("ToLF(%q) = %q, %v; want %q", tc.in, b, err, tc.want)
			}
		}
	}
	// A CRLF across the internal buffer boundary.
	in := strings.Repeat("x", 32<<10-1) + "\r\ny"
	b, _ := io.ReadAll(ToLF(strings.NewReader(in)))
	if string(b) != strings.Repeat("x", 32<<10-1)+"\ny" {
		t.Error("CRLF across the buffer boundary not converted")
	}
}

// errReader fails after n bytes.
type errReader struct {
	r io.Reader
	n int
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	p = p[:min(len(p), e.n)]
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

func TestMboxReaderError(t *testing.T) {
	in := "From a Mon Mar  4 05:06:07 2024\n\nx\n\nFrom b Mon Mar  4 05:06:07 2024\n\ny\n"
	_, err := readAll(t, &errReader{strings.NewReader(in), 40})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err %v", err)
	}
}

// FuzzMboxReader: the reader never panics or loops, every message's bytes
// come from the input, and writing the messages back out and reading them
// again gives the same messages (except the newline a non-final message
// without one gains).
func FuzzMboxReader(f *testing.F) {
	f.Add("From a Mon Mar  4 05:06:07 2024\nStatus: RO\n\n>From x\n\nFrom b Mon Mar  4 05:06:07 2024\n\ny")
	f.Add("")
	f.Add("From \r\n\r\n\r\nFrom \n>>From \nFrom")
	f.Add("\n\nFrom x\nX-Status: ADFT\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := readAll(t, strings.NewReader(in))
		if err != nil {
			return
		}
		var total int
		for _, m := range got {
			total += len(m.body)
		}
		if total > len(in) {
			t.Fatalf("read %d bytes from %d", total, len(in))
		}
		var buf bytes.Buffer
		w := NewMboxWriter(&buf)
		for _, m := range got {
			mw, err := w.Begin(m.sender, m.date)
			if err != nil {
				t.Fatal(err)
			}
			mw.Write([]byte(m.body))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := readAll(t, bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("reading what the writer wrote: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("%d messages became %d:\n%q\n%q", len(got), len(again), in, buf.String())
		}
		for i := range got {
			want := got[i].body
			if i < len(got)-1 && want != "" && !strings.HasSuffix(want, "\n") {
				want += "\n"
			}
			if again[i].body != want || again[i].flags != got[i].flags {
				t.Fatalf("message %d: %q became %q", i+1, want, again[i].body)
			}
		}
	})
}
