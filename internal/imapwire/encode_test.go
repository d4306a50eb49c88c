package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
)

// encode runs fn on an encoder over a buffer and returns what it wrote.
func encode(t testing.TB, utf8 bool, fn func(e *Encoder)) string {
	t.Helper()
	var out bytes.Buffer
	e := NewEncoder(bufio.NewWriter(&out))
	e.SetUTF8(utf8)
	fn(e)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestEncodeStrings(t *testing.T) {
	long := strings.Repeat("x", maxQuoted+1)
	for _, tc := range []struct {
		name string
		fn   func(e *Encoder)
		utf8 bool
		want string
	}{
		{"plain", func(e *Encoder) { e.String("hello") }, false, `"hello"`},
		{"empty", func(e *Encoder) { e.String("") }, false, `""`},
		{"escapes", func(e *Encoder) { e.String(`a"b\c`) }, false, `"a\"b\\c"`},
		{"CRLF", func(e *Encoder) { e.String("a\r\nb") }, false, "{4}\r\na\r\nb"},
		{"8-bit rev1", func(e *Encoder) { e.String("café") }, false, "{5}\r\ncafé"},
		{"8-bit utf8", func(e *Encoder) { e.String("café") }, true, `"café"`},
		{"invalid utf8", func(e *Encoder) { e.String("caf\xe9") }, true, "{4}\r\ncaf\xe9"},
		{"NUL dropped", func(e *Encoder) { e.String("a\x00b") }, false, `"ab"`},
		{"long", func(e *Encoder) { e.String(long) }, false, "{4097}\r\n" + long},
		{"nstring", func(e *Encoder) { e.NString("").SP().NString("x") }, false, `NIL "x"`},
		{"astring atom", func(e *Encoder) { e.AString("Sent") }, false, `Sent`},
		{"astring ]", func(e *Encoder) { e.AString("a]b") }, false, `a]b`},
		{"astring space", func(e *Encoder) { e.AString("My Sent") }, false, `"My Sent"`},
		{"astring NIL", func(e *Encoder) { e.AString("nil") }, false, `"nil"`},
		{"astring empty", func(e *Encoder) { e.AString("") }, false, `""`},
		{"astring wildcard", func(e *Encoder) { e.AString("a*") }, false, `"a*"`},
		{"mailbox INBOX", func(e *Encoder) { e.Mailbox("INBOX") }, false, `INBOX`},
		{"mailbox utf7", func(e *Encoder) { e.Mailbox("Entwürfe") }, false, `Entw&APw-rfe`},
		{"mailbox utf7 quoted", func(e *Encoder) { e.Mailbox("Mes Entwürfe") }, false, `"Mes Entw&APw-rfe"`},
		{"mailbox utf8", func(e *Encoder) { e.Mailbox("Entwürfe") }, true, `"Entwürfe"`},
		{"mailbox &", func(e *Encoder) { e.Mailbox("R&D") }, false, `R&-D`},
		{"mailbox & utf8", func(e *Encoder) { e.Mailbox("R&D") }, true, `R&D`},
		{"text", func(e *Encoder) { e.Text("bad\r\nthing\x00 é") }, false, "bad  thing  ?"},
		{"text utf8", func(e *Encoder) { e.Text("é\xff") }, true, "é?"},
		// A client may take "{n}" anywhere in a line for a literal.
		{"text brace", func(e *Encoder) { e.Text("send it as ~{5}") }, false, "send it as ~(5}"},
		{"numbers", func(e *Encoder) { e.Number(4294967295).SP().Number64(9223372036854775807).SP().Number64(-5) }, false, "4294967295 9223372036854775807 0"},
		{"flags", func(e *Encoder) {
			e.Flags(store.FlagSeen|store.FlagAnswered|store.FlagFlagged|store.FlagDeleted|store.FlagDraft, []string{"$Forwarded", "bad word", "Junk"})
		}, false, `(\Answered \Flagged \Deleted \Seen \Draft $Forwarded Junk)`},
		{"flags empty", func(e *Encoder) { e.Flags(0, nil) }, false, `()`},
		{"flags extra", func(e *Encoder) { e.Flags(store.FlagSeen, nil, `\*`) }, false, `(\Seen \*)`},
		{"date-time", func(e *Encoder) {
			e.DateTime(time.Date(1996, 7, 7, 2, 44, 25, 0, time.FixedZone("", -7*3600))).SP().
				DateTime(time.Date(2024, 12, 17, 23, 0, 5, 0, time.FixedZone("", 5*3600+30*60)))
		}, false, `" 7-Jul-1996 02:44:25 -0700" "17-Dec-2024 23:00:05 +0530"`},
		{"numset", func(e *Encoder) { e.NumSet([]uint32{1, 2, 3, 5, 7, 8, 4294967294, 4294967295}) }, false, "1:3,5,7:8,4294967294:4294967295"},
		{"numset order kept", func(e *Encoder) { e.NumSet([]uint32{5, 6, 1, 2, 9}) }, false, "5:6,1:2,9"},
		{"numset empty", func(e *Encoder) { e.NumSet(nil) }, false, ""},
		{"seqset", func(e *Encoder) { e.SeqSet(SeqSet{Ranges: []SeqRange{{1, 0}, {7, 7}}}) }, false, "1:*,7"},
		{"literal", func(e *Encoder) { e.Literal(5, strings.NewReader("hello, more")) }, false, "{5}\r\nhello"},
		{"literal8", func(e *Encoder) { e.Literal8(3, strings.NewReader("a\x00b")) }, false, "~{3}\r\na\x00b"},
		{"response", func(e *Encoder) {
			e.Atom("*").SP().Number(1).SP().Atom("FETCH").SP().Byte('(').Atom("FLAGS").SP().Flags(store.FlagSeen, nil).Byte(')').CRLF()
		}, false, "* 1 FETCH (FLAGS (\\Seen))\r\n"},
	} {
		if got := encode(t, tc.utf8, tc.fn); got != tc.want {
			t.Errorf("%s:\n got %.80q\nwant %.80q", tc.name, got, tc.want)
		}
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestEncoderErrors(t *testing.T) {
	// A short literal source fails the encoder.
	var out bytes.Buffer
	e := NewEncoder(bufio.NewWriter(&out))
	e.Literal(10, strings.NewReader("abc"))
	if err := e.Flush(); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("short literal: %v", err)
	}
	// Write errors stick.
	boom := errors.New("boom")
	e = NewEncoder(bufio.NewWriterSize(failWriter{boom}, 16))
	e.Atom(strings.Repeat("x", 100)).SP().String("y")
	if !errors.Is(e.Err(), boom) || !errors.Is(e.Flush(), boom) {
		t.Fatalf("sticky error: %v", e.Err())
	}
	e.Reset(bufio.NewWriter(&out))
	if e.Err() != nil {
		t.Fatal("Reset kept the error")
	}
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// testMessages are real-world-shaped messages with their known-good
// BODYSTRUCTURE, BODY and ENVELOPE (checked by hand against RFC 9051 §9 and
// the sizes of the bodies).
var testMessages = []struct {
	name, msg                string
	bodystructure, body, env string
}{
	{
		name: "RFC 9051 text/plain",
		msg: `Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)
From: Terry Gray <gray@cac.washington.edu>
Subject: IMAP4rev2 WG mtg summary and minutes
To: imap@cac.washington.edu
Cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>
Message-Id: <B27397-0100000@cac.washington.edu>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello
World
`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 2)`,
		env:           `("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL "<B27397-0100000@cac.washington.edu>")`,
	},
	{
		name: "mixed with attachment, groups, escapes",
		msg: `From: "Doe, John" <john@example.org>
To: undisclosed-recipients:;, Team: a@example.org, "B" <b@example.org>;
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= "quoted" \back
In-Reply-To: <parent@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

preamble
--XX
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hi =C3=A9
--XX
Content-Type: application/pdf; name="a.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="a.pdf"
Content-ID: <part2@example.org>
Content-Description: The PDF
Content-Language: en, de
Content-Location: http://example.org/a.pdf
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

JVBERi0xLjQK
--XX--
`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 9 1 NIL NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "a.pdf") "<part2@example.org>" "The PDF" "BASE64" 12 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "a.pdf")) ("en" "de") "http://example.org/a.pdf") "MIXED" ("BOUNDARY" "XX") NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 9 1)("APPLICATION" "PDF" ("NAME" "a.pdf") "<part2@example.org>" "The PDF" "BASE64" 12) "MIXED")`,
		env:           `(NIL "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= \"quoted\" \\back" (("Doe, John" NIL "john" "example.org")) (("Doe, John" NIL "john" "example.org")) (("Doe, John" NIL "john" "example.org")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)(NIL NIL "Team" NIL)(NIL NIL "a" "example.org")("B" NIL "b" "example.org")(NIL NIL NIL NIL)) NIL NIL "<parent@example.org>" NIL)`,
	},
	{
		name: "nested alternative, message/rfc822, encoded message/rfc822",
		msg: `From: a@example.org
Subject: fwd
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain

plain
--b2
Content-Type: text/html; charset=iso-8859-1
Content-Disposition: inline
Content-Language: fr

<p>html</p>
--b2--
--b1
Content-Type: message/rfc822

From: inner@example.org
Subject: inner
Content-Type: text/plain

inner body
--b1
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

RnJvbTogeEB5Cgpib2R5Cg==
--b1--
`,
		bodystructure: `((("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "iso-8859-1") NIL NIL "7BIT" 11 1 NIL ("INLINE" NIL) "fr" NIL) "ALTERNATIVE" ("BOUNDARY" "b2") NIL NIL NIL)` +
			`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 79 (NIL "inner" ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 5 NIL NIL NIL NIL)` +
			`("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 24 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)`,
		body: `((("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1)("TEXT" "HTML" ("CHARSET" "iso-8859-1") NIL NIL "7BIT" 11 1) "ALTERNATIVE")` +
			`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 79 (NIL "inner" ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1) 5)` +
			`("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 24 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) 1) "MIXED")`,
		env: `(NIL "fwd" ((NIL NIL "a" "example.org")) ((NIL NIL "a" "example.org")) ((NIL NIL "a" "example.org")) NIL NIL NIL NIL NIL)`,
	},
	{
		name: "multipart without parts",
		msg: `Content-Type: multipart/mixed; boundary=nothere
Subject: empty

no parts here
`,
		bodystructure: `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "nothere") NIL NIL NIL)`,
		body:          `(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) "MIXED")`,
		env:           `(NIL "empty" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	},
	{
		name: "no header at all",
		msg: `
body only
`,
		bodystructure: `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)`,
		body:          `("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1)`,
		env:           `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`,
	},
}

func TestBodyStructureAndEnvelope(t *testing.T) {
	for _, tc := range testMessages {
		t.Run(tc.name, func(t *testing.T) {
			p, err := message.Parse(strings.NewReader(crlf(tc.msg)))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what, want string
				fn         func(e *Encoder)
			}{
				{"BODYSTRUCTURE", tc.bodystructure, func(e *Encoder) { e.BodyStructure(p) }},
				{"BODY", tc.body, func(e *Encoder) { e.Body(p) }},
				{"ENVELOPE", tc.env, func(e *Encoder) { e.Envelope(p.Envelope) }},
			} {
				got := encode(t, false, c.fn)
				if got != c.want {
					t.Errorf("%s\n got %s\nwant %s", c.what, got, c.want)
				}
				if err := validateResponseData(c.what, got, false); err != nil {
					t.Errorf("%s does not parse: %v", c.what, err)
				}
			}
		})
	}
}

func TestEnvelope8Bit(t *testing.T) {
	env := &message.Envelope{
		Subject: "Grüße",
		From:    []message.Address{{Name: "Jürgen", Mailbox: "j", Host: "example.org"}},
	}
	got := encode(t, false, func(e *Encoder) { e.Envelope(env) })
	want := "(NIL {7}\r\nGrüße ((\"Jürgen\" NIL \"j\" \"example.org\")) NIL NIL NIL NIL NIL NIL NIL)"
	want = strings.Replace(want, `"Jürgen"`, "{7}\r\nJürgen", 1)
	if got != want {
		t.Errorf("rev1:\n got %q\nwant %q", got, want)
	}
	got = encode(t, true, func(e *Encoder) { e.Envelope(env) })
	if want := `(NIL "Grüße" (("Jürgen" NIL "j" "example.org")) NIL NIL NIL NIL NIL NIL NIL)`; got != want {
		t.Errorf("utf8:\n got %q\nwant %q", got, want)
	}
	if got := encode(t, false, func(e *Encoder) { e.Envelope(nil) }); got != `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)` {
		t.Errorf("nil envelope %s", got)
	}
}

// sx is a parsed response value, for validating encoder output.
type sx struct {
	kind  byte // '(' list, 'n' NIL, 's' string, '#' number
	list  []*sx
	sp    []bool // list: whether element i was preceded by SP
	str   string
	quote bool // the string was quoted (not a literal)
}

// parseSx reads one value: strictly NIL, a number, a quoted string, a
// literal or a list whose elements are separated by one SP, or adjacent
// when both are lists.
func parseSx(b []byte) (*sx, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("unexpected end")
	}
	switch c := b[0]; {
	case c == '(':
		x := &sx{kind: '('}
		b = b[1:]
		for {
			if len(b) == 0 {
				return nil, nil, errors.New("unterminated list")
			}
			if b[0] == ')' {
				if len(x.list) == 0 {
					return nil, nil, errors.New("empty list")
				}
				return x, b[1:], nil
			}
			sp := false
			if len(x.list) > 0 {
				if b[0] == ' ' {
					sp = true
					b = b[1:]
				} else if b[0] != '(' || x.list[len(x.list)-1].kind != '(' {
					return nil, nil, fmt.Errorf("missing SP before %q", b[0])
				}
			}
			el, r, err := parseSx(b)
			if err != nil {
				return nil, nil, err
			}
			x.list = append(x.list, el)
			x.sp = append(x.sp, sp)
			b = r
		}
	case c == 'N':
		if !bytes.HasPrefix(b, []byte("NIL")) {
			return nil, nil, errors.New("bad atom")
		}
		return &sx{kind: 'n'}, b[3:], nil
	case '0' <= c && c <= '9':
		i := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return &sx{kind: '#', str: string(b[:i])}, b[i:], nil
	case c == '"':
		var s []byte
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case '"':
				return &sx{kind: 's', str: string(s), quote: true}, b[i+1:], nil
			case '\\':
				i++
				if i == len(b) || (b[i] != '"' && b[i] != '\\') {
					return nil, nil, errors.New("bad escape")
				}
			case '\r', '\n', 0:
				return nil, nil, errors.New("CR, LF or NUL in quoted")
			}
			s = append(s, b[i])
		}
		return nil, nil, errors.New("unterminated quoted")
	case c == '{':
		end := bytes.Index(b, []byte("}\r\n"))
		if end < 0 {
			return nil, nil, errors.New("bad literal")
		}
		n, err := strconv.Atoi(string(b[1:end]))
		if err != nil || len(b) < end+3+n {
			return nil, nil, errors.New("bad literal size")
		}
		data := b[end+3 : end+3+n]
		if bytes.IndexByte(data, 0) >= 0 {
			return nil, nil, errors.New("NUL in literal")
		}
		return &sx{kind: 's', str: string(data)}, b[end+3+n:], nil
	}
	return nil, nil, fmt.Errorf("unexpected %q", b[0])
}

// validateResponseData parses s as a BODYSTRUCTURE, BODY or ENVELOPE and
// checks it against the RFC 9051 §9 grammar.
func validateResponseData(what, s string, utf8 bool) error {
	x, rest, err := parseSx([]byte(s))
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("trailing %q", rest)
	}
	var check func(x *sx) error
	check = func(x *sx) error {
		if x.kind == 's' && x.quote && !utf8 {
			for i := 0; i < len(x.str); i++ {
				if x.str[i] >= 0x80 {
					return errors.New("8-bit quoted string outside UTF-8 mode")
				}
			}
		}
		for _, el := range x.list {
			if err := check(el); err != nil {
				return err
			}
		}
		return nil
	}
	if err := check(x); err != nil {
		return err
	}
	switch what {
	case "ENVELOPE":
		return validateEnvelope(x)
	case "BODYSTRUCTURE":
		return validateBody(x, true)
	}
	return validateBody(x, false)
}

func isNString(x *sx) bool { return x.kind == 'n' || x.kind == 's' }

func validateEnvelope(x *sx) error {
	if x.kind != '(' || len(x.list) != 10 {
		return errors.New("envelope is not a list of 10")
	}
	for i, el := range x.list {
		if !x.sp[i] && i > 0 {
			return errors.New("envelope fields not SP-separated")
		}
		if i < 2 || i > 7 {
			if !isNString(el) {
				return fmt.Errorf("envelope field %d not nstring", i)
			}
			continue
		}
		if el.kind == 'n' {
			continue
		}
		if el.kind != '(' {
			return fmt.Errorf("address list %d not a list or NIL", i)
		}
		for j, a := range el.list {
			if el.sp[j] {
				return errors.New("SP between addresses")
			}
			if a.kind != '(' || len(a.list) != 4 {
				return errors.New("address is not a list of 4")
			}
			for _, f := range a.list {
				if !isNString(f) {
					return errors.New("address field not nstring")
				}
			}
		}
	}
	return nil
}

func validateParams(x *sx) error {
	if x.kind == 'n' {
		return nil
	}
	if x.kind != '(' || len(x.list)%2 != 0 {
		return errors.New("body-fld-param not NIL or even list")
	}
	for _, el := range x.list {
		if el.kind != 's' {
			return errors.New("param not a string")
		}
	}
	return nil
}

// validateExt checks body-fld-dsp SP body-fld-lang SP body-fld-loc.
func validateExt(l []*sx) error {
	if len(l) != 3 {
		return fmt.Errorf("extension data has %d fields after md5/params, want 3", len(l))
	}
	if dsp := l[0]; dsp.kind != 'n' {
		if dsp.kind != '(' || len(dsp.list) != 2 || dsp.list[0].kind != 's' {
			return errors.New("bad body-fld-dsp")
		}
		if err := validateParams(dsp.list[1]); err != nil {
			return err
		}
	}
	if lang := l[1]; lang.kind == '(' {
		for _, el := range lang.list {
			if el.kind != 's' {
				return errors.New("bad body-fld-lang")
			}
		}
	} else if !isNString(lang) {
		return errors.New("bad body-fld-lang")
	}
	if !isNString(l[2]) {
		return errors.New("bad body-fld-loc")
	}
	return nil
}

func validateBody(x *sx, ext bool) error {
	if x.kind != '(' {
		return errors.New("body not a list")
	}
	l := x.list
	if l[0].kind == '(' {
		n := 0
		for n < len(l) && l[n].kind == '(' {
			if n > 0 && x.sp[n] {
				return errors.New("SP between multipart bodies")
			}
			if err := validateBody(l[n], ext); err != nil {
				return err
			}
			n++
		}
		if n == len(l) || l[n].kind != 's' || !x.sp[n] {
			return errors.New("multipart without subtype")
		}
		rest := l[n+1:]
		if !ext {
			if len(rest) != 0 {
				return errors.New("extension data in BODY")
			}
			return nil
		}
		if len(rest) != 4 {
			return fmt.Errorf("multipart extension has %d fields", len(rest))
		}
		if err := validateParams(rest[0]); err != nil {
			return err
		}
		return validateExt(rest[1:])
	}
	if len(l) < 7 {
		return errors.New("body-type-1part too short")
	}
	if l[0].kind != 's' || l[1].kind != 's' {
		return errors.New("media type not strings")
	}
	if err := validateParams(l[2]); err != nil {
		return err
	}
	if !isNString(l[3]) || !isNString(l[4]) || l[5].kind != 's' || l[6].kind != '#' {
		return errors.New("bad body-fields")
	}
	rest := l[7:]
	typ, sub := strings.ToUpper(l[0].str), strings.ToUpper(l[1].str)
	switch {
	case typ == "MESSAGE" && (sub == "RFC822" || sub == "GLOBAL"):
		if len(rest) < 3 {
			return errors.New("body-type-msg too short")
		}
		if err := validateEnvelope(rest[0]); err != nil {
			return err
		}
		if err := validateBody(rest[1], ext); err != nil {
			return err
		}
		if rest[2].kind != '#' {
			return errors.New("message lines not a number")
		}
		rest = rest[3:]
	case typ == "TEXT":
		if len(rest) < 1 || rest[0].kind != '#' {
			return errors.New("text lines missing")
		}
		rest = rest[1:]
	}
	if !ext {
		if len(rest) != 0 {
			return errors.New("extension data in BODY")
		}
		return nil
	}
	if len(rest) != 4 || !isNString(rest[0]) {
		return fmt.Errorf("1part extension has %d fields", len(rest))
	}
	return validateExt(rest[1:])
}
