package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// crlf turns the LF line ends of a test literal into CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// rest as a wanted body means "everything after the wanted header" (root only).
const rest = "\x00rest"

// wantPart describes an expected Part by the bytes its offsets must select.
type wantPart struct {
	typ    string // "type/subtype"
	header string // data[HeaderStart:BodyStart]
	body   string // data[BodyStart:End], or rest
	lines  int64  // -1: not checked here (checkInvariants still recounts it)
	parts  []wantPart
	msg    *wantPart
}

type parseCase struct {
	name string
	msg  string
	want wantPart
}

// leaf is a shorthand for a part without children.
func leaf(typ, header, body string, lines int64) wantPart {
	return wantPart{typ: typ, header: header, body: body, lines: lines}
}

func parseCases() []parseCase {
	simpleHeader := crlf(`From: Alice <alice@example.org>
To: bob@example.com
Subject: hello
Date: Mon, 2 Jan 2006 15:04:05 -0700
Message-ID: <1@example.org>

`)
	altHeader := crlf("From: a@example.org\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n")
	altBody := crlf(`--b1
Content-Type: text/plain; charset=utf-8

plain
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>html</p>
--b1--
`)
	alt := wantPart{typ: "multipart/alternative", header: altHeader, body: rest, lines: 10, parts: []wantPart{
		leaf("text/plain", crlf("Content-Type: text/plain; charset=utf-8\n\n"), "plain", 1),
		leaf("text/html", crlf("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"), "<p>html</p>", 1),
	}}

	nestedHeader := crlf("Content-Type: multipart/mixed; boundary=outer\nSubject: nested\n\n")
	nestedBody := crlf(`preamble
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

text
--inner
Content-Type: text/html

<b>x</b>
--inner--

--outer
Content-Type: application/pdf; name="a.pdf"
Content-Disposition: attachment; filename="a.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
JVBERi0xLjQK
--outer--
epilogue
`)

	rfc822Header := crlf("From: x@example.org\nContent-Type: multipart/mixed; boundary=\"X\"\n\n")
	rfc822Body := crlf(`--X
Content-Type: text/plain

see attached
--X
Content-Type: message/rfc822
Content-Disposition: attachment

From: Carol <carol@example.net>
Subject: inner
Content-Type: text/plain

inner body
--X--
`)

	digestBody := crlf(`--d

From: one@example.org
Subject: one

first
--d
Content-Type: text/plain

not a message
--d--
`)

	missingFinal := crlf(`--m
Content-Type: text/plain

one
--m
Content-Type: text/plain

two
`)

	weird := `----=_Part_0_123.456(x)+,/:?`
	weirdBody := crlf("--" + weird + "\nContent-Type: text/plain\n\nbody\n--" + weird + "--\n")

	lfBody := `--b1
Content-Type: text/plain; charset=utf-8

plain
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>html</p>
--b1--
`

	oddParts := crlf(`--b
--b

--b
no header here
--b
Content-Type: text/plain
--b
Content-Type: text/plain

--b
Content-Type: text/plain



--b--
`)

	prefixBody := crlf(`--ab
Content-Type: multipart/mixed; boundary="abc"

--abc
Content-Type: text/plain

in abc
--abc--
--ab
Content-Type: text/plain

in ab
--ab--
`)

	unclosedInner := crlf(`--o
Content-Type: multipart/mixed; boundary="i"

--i
Content-Type: text/plain

inner one
--o
Content-Type: text/plain

outer two
--o--
`)

	padded := crlf("--p \t\nContent-Type: text/plain\n\nx\n--p-- \n")

	b64msg := crlf(`--Z
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

RnJvbTogYUBiCgpoaQo=
--Z--
`)

	return []parseCase{
		{"simple text", simpleHeader + crlf("Hi Bob,\nhow are you?\n"),
			leaf("text/plain", simpleHeader, crlf("Hi Bob,\nhow are you?\n"), 2)},
		{"no trailing newline", crlf("Subject: x\n\nlast line"),
			leaf("text/plain", crlf("Subject: x\n\n"), "last line", 1)},
		{"multipart/alternative", altHeader + altBody, alt},
		{"nested multipart/mixed with attachment", nestedHeader + nestedBody,
			wantPart{typ: "multipart/mixed", header: nestedHeader, body: rest, lines: -1, parts: []wantPart{
				{typ: "multipart/alternative", header: crlf("Content-Type: multipart/alternative; boundary=\"inner\"\n\n"),
					body:  crlf("--inner\nContent-Type: text/plain\n\ntext\n--inner\nContent-Type: text/html\n\n<b>x</b>\n--inner--\n"),
					lines: 9,
					parts: []wantPart{
						leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "text", 1),
						leaf("text/html", crlf("Content-Type: text/html\n\n"), "<b>x</b>", 1),
					}},
				leaf("application/pdf", crlf("Content-Type: application/pdf; name=\"a.pdf\"\nContent-Disposition: attachment; filename=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\n"),
					crlf("JVBERi0xLjQK\nJVBERi0xLjQK"), 2),
			}}},
		{"message/rfc822 attachment", rfc822Header + rfc822Body,
			wantPart{typ: "multipart/mixed", header: rfc822Header, body: rest, lines: -1, parts: []wantPart{
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "see attached", 1),
				{typ: "message/rfc822", header: crlf("Content-Type: message/rfc822\nContent-Disposition: attachment\n\n"),
					body: crlf("From: Carol <carol@example.net>\nSubject: inner\nContent-Type: text/plain\n\ninner body"), lines: 5,
					msg: &wantPart{typ: "text/plain", header: crlf("From: Carol <carol@example.net>\nSubject: inner\nContent-Type: text/plain\n\n"),
						body: "inner body", lines: 1}},
			}}},
		{"multipart/digest defaults", crlf("Content-Type: multipart/digest; boundary=\"d\"\n\n") + digestBody,
			wantPart{typ: "multipart/digest", header: crlf("Content-Type: multipart/digest; boundary=\"d\"\n\n"), body: rest, lines: -1, parts: []wantPart{
				{typ: "message/rfc822", header: "\r\n", body: crlf("From: one@example.org\nSubject: one\n\nfirst"), lines: 4,
					msg: &wantPart{typ: "text/plain", header: crlf("From: one@example.org\nSubject: one\n\n"), body: "first", lines: 1}},
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "not a message", 1),
			}}},
		{"missing final boundary", crlf("Content-Type: multipart/mixed; boundary=\"m\"\n\n") + missingFinal,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=\"m\"\n\n"), body: rest, lines: 8, parts: []wantPart{
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "one", 1),
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "two\r\n", 1),
			}}},
		{"boundary with weird chars", crlf("Content-Type: multipart/mixed;\n boundary=\""+weird+"\"\n\n") + weirdBody,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed;\n boundary=\"" + weird + "\"\n\n"), body: rest, lines: -1, parts: []wantPart{
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "body", 1),
			}}},
		{"unquoted boundary with equals sign", crlf("Content-Type: multipart/mixed; boundary=----=_NextPart_000_0001\n\n------=_NextPart_000_0001\n\nx\n------=_NextPart_000_0001--\n"),
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=----=_NextPart_000_0001\n\n"), body: rest, lines: -1, parts: []wantPart{
				leaf("text/plain", "\r\n", "x", 1),
			}}},
		{"bare LF", "From: a@example.org\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n" + lfBody,
			wantPart{typ: "multipart/alternative", header: "From: a@example.org\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n", body: rest, lines: 10, parts: []wantPart{
				leaf("text/plain", "Content-Type: text/plain; charset=utf-8\n\n", "plain", 1),
				leaf("text/html", "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n", "<p>html</p>", 1),
			}}},
		{"mixed CRLF and LF", "Subject: x\r\nContent-Type: multipart/mixed; boundary=q\n\r\n--q\nContent-Type: text/plain\r\n\r\na\r\nb\n--q--\r\n",
			wantPart{typ: "multipart/mixed", header: "Subject: x\r\nContent-Type: multipart/mixed; boundary=q\n\r\n", body: rest, lines: 6, parts: []wantPart{
				leaf("text/plain", "Content-Type: text/plain\r\n\r\n", "a\r\nb", 2),
			}}},
		{"header with no body", crlf("From: a@example.org\nSubject: no body\n"),
			leaf("text/plain", crlf("From: a@example.org\nSubject: no body\n"), "", 0)},
		{"header cut mid-line", "From: a@example.org\r\nSubject: no bo",
			leaf("text/plain", "From: a@example.org\r\nSubject: no bo", "", 0)},
		{"header and blank line only", crlf("Subject: x\n\n"),
			leaf("text/plain", crlf("Subject: x\n\n"), "", 0)},
		{"empty message", "", leaf("text/plain", "", "", 0)},
		{"only a blank line", "\r\n", leaf("text/plain", "\r\n", "", 0)},
		{"no header at all", crlf("hello world\nsecond line\n"),
			leaf("text/plain", "", crlf("hello world\nsecond line\n"), 2)},
		{"body starts with blank line", crlf("\nbody\n"), leaf("text/plain", "\r\n", "body\r\n", 1)},
		{"broken header line is skipped", crlf("Subject: a\nthis is not a field\nContent-Type: text/html\n\nbody\n"),
			leaf("text/html", crlf("Subject: a\nthis is not a field\nContent-Type: text/html\n\n"), "body\r\n", 1)},
		{"odd parts", crlf("Content-Type: multipart/mixed; boundary=b\n\n") + oddParts,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=b\n\n"), body: rest, lines: -1, parts: []wantPart{
				leaf("text/plain", "", "", 0),                                       // "--b" straight after "--b"
				leaf("text/plain", "\r\n", "", 0),                                   // blank header, empty body
				leaf("text/plain", "", "no header here", 1),                         // body without header
				leaf("text/plain", "Content-Type: text/plain", "", 0),               // delimiter right after header
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "", 0),     // the blank line doubles as the delimiter's CRLF
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "\r\n", 1), // one empty line
			}}},
		{"boundary that prefixes another", crlf("Content-Type: multipart/mixed; boundary=ab\n\n") + prefixBody,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=ab\n\n"), body: rest, lines: -1, parts: []wantPart{
				{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=\"abc\"\n\n"),
					body: crlf("--abc\nContent-Type: text/plain\n\nin abc\n--abc--"), lines: 5, parts: []wantPart{
						leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "in abc", 1),
					}},
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "in ab", 1),
			}}},
		{"outer delimiter closes inner multipart", crlf("Content-Type: multipart/mixed; boundary=o\n\n") + unclosedInner,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=o\n\n"), body: rest, lines: -1, parts: []wantPart{
				{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=\"i\"\n\n"),
					body: crlf("--i\nContent-Type: text/plain\n\ninner one"), lines: 4, parts: []wantPart{
						leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "inner one", 1),
					}},
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "outer two", 1),
			}}},
		{"transport padding", crlf("Content-Type: multipart/mixed; boundary=p\n\n") + padded,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=p\n\n"), body: rest, lines: -1, parts: []wantPart{
				leaf("text/plain", crlf("Content-Type: text/plain\n\n"), "x", 1),
			}}},
		{"multipart without boundary is text/plain", crlf("Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n"),
			leaf("text/plain", crlf("Content-Type: multipart/mixed\n\n"), crlf("--x\n\nbody\n--x--\n"), 4)},
		{"multipart without any delimiter", crlf("Content-Type: multipart/mixed; boundary=nope\n\njust text\n"),
			leaf("multipart/mixed", crlf("Content-Type: multipart/mixed; boundary=nope\n\n"), "just text\r\n", 1)},
		{"base64 message/rfc822 is opaque", crlf("Content-Type: multipart/mixed; boundary=Z\n\n") + b64msg,
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=Z\n\n"), body: rest, lines: -1, parts: []wantPart{
				leaf("message/rfc822", crlf("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"), "RnJvbTogYUBiCgpoaQo=", 1),
			}}},
		{"top-level message/rfc822", crlf("Content-Type: message/rfc822\n\nSubject: in\n\nbody\n"),
			wantPart{typ: "message/rfc822", header: crlf("Content-Type: message/rfc822\n\n"), body: crlf("Subject: in\n\nbody\n"), lines: 3,
				msg: &wantPart{typ: "text/plain", header: crlf("Subject: in\n\n"), body: "body\r\n", lines: 1}}},
		{"close delimiter at end without line break", crlf("Content-Type: multipart/mixed; boundary=e\n\n--e\n\nx\n") + "--e--",
			wantPart{typ: "multipart/mixed", header: crlf("Content-Type: multipart/mixed; boundary=e\n\n"), body: rest, lines: 4, parts: []wantPart{
				leaf("text/plain", "\r\n", "x", 1),
			}}},
		{"bare CR is not a line break", "Subject: a\rb\r\n\r\nx\ry\r\n",
			leaf("text/plain", "Subject: a\rb\r\n\r\n", "x\ry\r\n", 1)},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.msg)
			root, err := Parse(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, data, root)
			if root.HeaderStart != 0 || root.End != int64(len(data)) {
				t.Errorf("root spans [%d,%d), want [0,%d)", root.HeaderStart, root.End, len(data))
			}
			want := tc.want
			if want.body == rest {
				want.body = tc.msg[len(want.header):]
			}
			checkPart(t, data, root, want, "root")
		})
	}
}

func checkPart(t *testing.T, data []byte, got *Part, want wantPart, path string) {
	t.Helper()
	if typ := got.MediaType + "/" + got.MediaSubtype; typ != want.typ {
		t.Errorf("%s: type %q, want %q", path, typ, want.typ)
	}
	if h := string(data[got.HeaderStart:got.BodyStart]); h != want.header {
		t.Errorf("%s: header %q, want %q", path, h, want.header)
	}
	if b := string(data[got.BodyStart:got.End]); b != want.body {
		t.Errorf("%s: body %q, want %q", path, b, want.body)
	}
	if want.lines >= 0 && got.Lines != want.lines {
		t.Errorf("%s: lines %d, want %d", path, got.Lines, want.lines)
	}
	if len(got.Parts) != len(want.parts) {
		t.Errorf("%s: %d parts, want %d", path, len(got.Parts), len(want.parts))
	} else {
		for i := range want.parts {
			checkPart(t, data, got.Parts[i], want.parts[i], fmt.Sprintf("%s.%d", path, i+1))
		}
	}
	switch {
	case want.msg == nil && got.Message != nil:
		t.Errorf("%s: unexpected embedded message", path)
	case want.msg != nil && got.Message == nil:
		t.Errorf("%s: no embedded message", path)
	case want.msg != nil:
		if got.Message.Envelope == nil {
			t.Errorf("%s: embedded message without envelope", path)
		}
		checkPart(t, data, got.Message, *want.msg, path+".msg")
	}
}

// countLines is the definition of Part.Lines.
func countLines(b []byte) int64 {
	n := int64(bytes.Count(b, []byte{'\n'}))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// checkInvariants asserts what must hold for any input: offsets ordered and
// in range, children inside parents in order, Lines as defined, defaults
// filled, and a JSON round trip that loses nothing for UTF-8 input.
func checkInvariants(t *testing.T, data []byte, root *Part) {
	t.Helper()
	if root == nil {
		t.Fatal("nil root")
	}
	if root.HeaderStart != 0 || root.End != int64(len(data)) {
		t.Errorf("root spans [%d,%d) of %d bytes", root.HeaderStart, root.End, len(data))
	}
	if root.Envelope == nil {
		t.Error("root without envelope")
	}
	n := 0
	var walk func(p *Part, depth int)
	walk = func(p *Part, depth int) {
		n++
		if depth > MaxDepth+1 {
			t.Fatalf("depth %d beyond MaxDepth", depth)
		}
		if !(0 <= p.HeaderStart && p.HeaderStart <= p.BodyStart && p.BodyStart <= p.End && p.End <= int64(len(data))) {
			t.Fatalf("bad offsets h=%d b=%d e=%d len=%d", p.HeaderStart, p.BodyStart, p.End, len(data))
		}
		if want := countLines(data[p.BodyStart:p.End]); p.Lines != want {
			t.Errorf("part [%d,%d,%d): Lines %d, recount %d", p.HeaderStart, p.BodyStart, p.End, p.Lines, want)
		}
		if p.MediaType == "" || p.MediaSubtype == "" || p.MediaType != strings.ToLower(p.MediaType) ||
			p.MediaSubtype != strings.ToLower(p.MediaSubtype) {
			t.Errorf("bad media type %q/%q", p.MediaType, p.MediaSubtype)
		}
		if p.Encoding == "" || p.Encoding != strings.ToUpper(p.Encoding) {
			t.Errorf("bad encoding %q", p.Encoding)
		}
		if len(p.Parts) > 0 && p.MediaType != "multipart" {
			t.Errorf("%s/%s has body parts", p.MediaType, p.MediaSubtype)
		}
		prevEnd := p.BodyStart
		for _, c := range p.Parts {
			if c.HeaderStart < prevEnd || c.End > p.End {
				t.Fatalf("child [%d,%d) outside parent body [%d,%d) or overlapping previous (end %d)",
					c.HeaderStart, c.End, p.BodyStart, p.End, prevEnd)
			}
			if c.Envelope != nil {
				t.Errorf("body part with envelope")
			}
			prevEnd = c.End
			walk(c, depth+1)
		}
		if m := p.Message; m != nil {
			if m.HeaderStart != p.BodyStart || m.End != p.End {
				t.Fatalf("message [%d,%d) is not the body [%d,%d)", m.HeaderStart, m.End, p.BodyStart, p.End)
			}
			if m.Envelope == nil {
				t.Errorf("embedded message without envelope")
			}
			walk(m, depth+1)
		}
		if e := p.Envelope; e != nil {
			for _, l := range [][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
				checkAddresses(t, l)
			}
		}
	}
	walk(root, 0)
	if n > MaxParts {
		t.Errorf("%d parts, more than MaxParts", n)
	}

	js, err := json.Marshal(root)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if utf8.Valid(data) {
		var back Part
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		if !reflect.DeepEqual(&back, root) {
			t.Errorf("JSON round trip differs:\n got %+v\nwant %+v", &back, root)
		}
	}
}

// checkAddresses asserts the Address representation: ordinary addresses have
// a mailbox and a host, group markers pair up.
func checkAddresses(t *testing.T, l []Address) {
	t.Helper()
	open := false
	for _, a := range l {
		switch {
		case a.IsGroupStart():
			if open {
				t.Errorf("nested group start in %+v", l)
			}
			open = true
		case a.IsGroupEnd():
			if !open || a.Name != "" || a.Adl != "" {
				t.Errorf("bad group end in %+v", l)
			}
			open = false
		}
	}
	if open {
		t.Errorf("unterminated group in %+v", l)
	}
}

func TestParseMIMEFields(t *testing.T) {
	msg := crlf(`Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: Text/HTML; Charset="UTF-8"; format=flowed
Content-Transfer-Encoding: Quoted-Printable
Content-ID: <part1@example.org>
Content-Description: the
 body
Content-Language: en, de (German)
Content-Location: http://example.org/x
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

<p>hi</p>
--B
Content-Type: application/octet-stream;
	name*0*=UTF-8''%E2%82%AC%20rates;
	name*1=" 2024.pdf"
Content-Disposition: Attachment; filename*=iso-8859-1'en'%A3%20price.txt; size=42

xx
--B--
`)
	root, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, []byte(msg), root)
	if len(root.Parts) != 2 {
		t.Fatalf("%d parts", len(root.Parts))
	}
	p := root.Parts[0]
	want := &Part{
		HeaderStart: p.HeaderStart, BodyStart: p.BodyStart, End: p.End, Lines: 1,
		MediaType: "text", MediaSubtype: "html",
		Params:      []Param{{"charset", "UTF-8"}, {"format", "flowed"}},
		ID:          "<part1@example.org>",
		Description: "the body",
		Encoding:    "QUOTED-PRINTABLE",
		Language:    []string{"en", "de"},
		Location:    "http://example.org/x",
		MD5:         "Q2hlY2sgSW50ZWdyaXR5IQ==",
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("part 1:\n got %+v\nwant %+v", p, want)
	}
	p = root.Parts[1]
	if got := p.Param("name"); got != "€ rates 2024.pdf" {
		t.Errorf("RFC 2231 name = %q", got)
	}
	if p.Encoding != "7BIT" {
		t.Errorf("default encoding %q", p.Encoding)
	}
	if p.Disposition != "attachment" {
		t.Errorf("disposition %q", p.Disposition)
	}
	wantDP := []Param{{"filename", "£ price.txt"}, {"size", "42"}}
	if !reflect.DeepEqual(p.DispositionParams, wantDP) {
		t.Errorf("disposition params %+v, want %+v", p.DispositionParams, wantDP)
	}
	if root.Params[0] != (Param{"boundary", "B"}) {
		t.Errorf("root params %+v", root.Params)
	}
}

func TestParseMediaType(t *testing.T) {
	for _, tc := range []struct {
		in       string
		typ, sub string
		params   []Param
		ok       bool
	}{
		{"text/plain", "text", "plain", nil, true},
		{" TEXT / Plain ; CHARSET = \"us-ascii\" ", "text", "plain", []Param{{"charset", "us-ascii"}}, true},
		{"text/plain charset=utf-8", "text", "plain", []Param{{"charset", "utf-8"}}, true},
		{"text/plain; charset=utf-8 (comment); format=flowed", "text", "plain",
			[]Param{{"charset", "utf-8"}, {"format", "flowed"}}, true},
		{"text/plain;;; charset=utf-8;", "text", "plain", []Param{{"charset", "utf-8"}}, true},
		{`multipart/mixed; boundary="a\"b"`, "multipart", "mixed", []Param{{"boundary", `a"b`}}, true},
		{`multipart/mixed; boundary="unterminated`, "multipart", "mixed", []Param{{"boundary", "unterminated"}}, true},
		{"application/x; name=a; name=b", "application", "x", []Param{{"name", "a"}}, true},
		{"application/x; garbage; @@; k=v", "application", "x", []Param{{"k", "v"}}, true},
		{"application/x; a*=''%41%4g%; b*1=two; b*0=one", "application", "x",
			[]Param{{"a", "A%4g%"}, {"b", "onetwo"}}, true},
		{"application/x; n=plain; n*=utf-8''ext", "application", "x", []Param{{"n", "ext"}}, true},
		{"application/x; n*=windows-1252''%80", "application", "x", []Param{{"n", "€"}}, true},
		{"application/x; n*=koi8-r''%C1", "application", "x", []Param{{"n", "\xc1"}}, true},
		{"text", "", "", nil, false},
		{"text/", "", "", nil, false},
		{"/plain", "", "", nil, false},
		{"", "", "", nil, false},
		{"(comment) text/plain", "text", "plain", nil, true},
	} {
		typ, sub, params, ok := parseMediaType(tc.in)
		if typ != tc.typ || sub != tc.sub || ok != tc.ok || !reflect.DeepEqual(params, tc.params) {
			t.Errorf("parseMediaType(%q) = %q, %q, %+v, %v; want %q, %q, %+v, %v",
				tc.in, typ, sub, params, ok, tc.typ, tc.sub, tc.params, tc.ok)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		typ       string
		params    []Param
	}{
		{"absent", "Subject: x\r\n\r\nbody", "text/plain", []Param{{"charset", "us-ascii"}}},
		{"invalid", "Content-Type: garbage\r\n\r\nbody", "text/plain", []Param{{"charset", "us-ascii"}}},
		{"text without charset keeps no params", "Content-Type: text/plain\r\n\r\nbody", "text/plain", nil},
		{"first of duplicates wins", "Content-Type: text/html\r\nContent-Type: image/png\r\n\r\n", "text/html", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if typ := p.MediaType + "/" + p.MediaSubtype; typ != tc.typ || !reflect.DeepEqual(p.Params, tc.params) {
				t.Errorf("got %s %+v, want %s %+v", typ, p.Params, tc.typ, tc.params)
			}
			if p.Encoding != "7BIT" {
				t.Errorf("encoding %q", p.Encoding)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	t.Run("depth", func(t *testing.T) {
		var b strings.Builder
		const levels = 100
		for i := range levels {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
		}
		b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
		for i := levels - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "--b%d--\r\n", i)
		}
		data := []byte(b.String())
		root, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, data, root)
		depth := 0
		for p := root; len(p.Parts) > 0; p = p.Parts[0] {
			depth++
		}
		if depth != MaxDepth {
			t.Errorf("parsed depth %d, want %d", depth, MaxDepth)
		}
	})
	t.Run("message depth", func(t *testing.T) {
		data := []byte(strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 100) + "body\r\n")
		root, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, data, root)
	})
	t.Run("parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
		for range MaxParts + 500 {
			b.WriteString("--x\r\n\r\np\r\n")
		}
		b.WriteString("--x--\r\n")
		data := []byte(b.String())
		root, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, data, root)
		if len(root.Parts) != MaxParts-1 {
			t.Errorf("%d parts listed, want %d", len(root.Parts), MaxParts-1)
		}
	})
	t.Run("huge header", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Subject: first\r\n")
		for b.Len() < MaxHeaderBytes+1000 {
			b.WriteString("X-Filler: " + strings.Repeat("y", 70) + "\r\n")
		}
		b.WriteString("Content-Type: text/html\r\n\r\nbody\r\n")
		data := []byte(b.String())
		root, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, data, root)
		if got := string(data[root.BodyStart:root.End]); got != "body\r\n" {
			t.Errorf("body %q", got)
		}
		if root.Envelope.Subject != "first" {
			t.Errorf("subject %q", root.Envelope.Subject)
		}
		if root.MediaSubtype != "plain" {
			t.Errorf("Content-Type beyond MaxHeaderBytes was used: %s", root.MediaSubtype)
		}
	})
	t.Run("CRLF split at the buffer edge", func(t *testing.T) {
		subject := strings.Repeat("s", readBufferSize-len("Subject: ")-1) // "\r" is the buffer's last byte
		msg := "Subject: " + subject + "\r\n\tfolded\r\n\r\nbody"
		root, err := Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, []byte(msg), root)
		if want := subject + "\tfolded"; root.Envelope.Subject != want {
			t.Errorf("subject ends %q", root.Envelope.Subject[len(root.Envelope.Subject)-10:])
		}
	})
	t.Run("long lines", func(t *testing.T) {
		subject := strings.Repeat("s", 3*readBufferSize)
		body := strings.Repeat("b", 5*readBufferSize+7)
		msg := "Content-Type: multipart/mixed; boundary=L\r\nSubject: " + subject + "\r\n\r\n--L\r\n" +
			"Content-Type: text/plain\r\n\r\n" + body + "\r\n" + body + "\r\n--L--\r\n"
		data := []byte(msg)
		root, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, data, root)
		if root.Envelope.Subject != subject {
			t.Errorf("long subject lost (%d bytes)", len(root.Envelope.Subject))
		}
		if len(root.Parts) != 1 || string(data[root.Parts[0].BodyStart:root.Parts[0].End]) != body+"\r\n"+body {
			t.Errorf("long body lines mis-split")
		}
	})
}

type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse(&errReader{data: []byte("Subject: x\r\n\r\npartial"), err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping boom", err)
	}
	// A reader that returns data and io.EOF together is fine.
	p, err := Parse(io.MultiReader(strings.NewReader("Subject: x\r\n"), strings.NewReader("\r\nbody")))
	if err != nil || p.End != int64(len("Subject: x\r\n\r\nbody")) {
		t.Fatalf("Parse = %+v, %v", p, err)
	}
}

func TestEnvelope(t *testing.T) {
	msg := crlf(`Date: Tue, 1 Jul 2003 10:52:37 +0200
Subject: =?UTF-8?B?SGVsbG8gV8O2cmxk?=
 folded
From: "Doe, John" <john@example.org>
To: undisclosed-recipients:;, Team: a@example.org, "B" <b@example.org>;,
	c@example.org
Cc: Mary Smith <@relay.example:mary@example.net> (comment)
In-Reply-To: <parent@example.org>
Message-ID:
 <id@example.org>
Received: from x by y

body
`)
	root, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	from := []Address{{Name: "Doe, John", Mailbox: "john", Host: "example.org"}}
	want := &Envelope{
		Date:    "Tue, 1 Jul 2003 10:52:37 +0200",
		Subject: "=?UTF-8?B?SGVsbG8gV8O2cmxk?= folded",
		From:    from,
		Sender:  from,
		ReplyTo: from,
		To: []Address{
			{Mailbox: "undisclosed-recipients"}, {},
			{Mailbox: "Team"},
			{Mailbox: "a", Host: "example.org"},
			{Name: "B", Mailbox: "b", Host: "example.org"},
			{},
			{Mailbox: "c", Host: "example.org"},
		},
		Cc:        []Address{{Name: "Mary Smith", Adl: "@relay.example", Mailbox: "mary", Host: "example.net"}},
		InReplyTo: "<parent@example.org>",
		MessageID: "<id@example.org>",
	}
	if !reflect.DeepEqual(root.Envelope, want) {
		t.Errorf("envelope\n got %+v\nwant %+v", root.Envelope, want)
	}
	if got := DecodeHeader(root.Envelope.Subject); got != "Hello Wörld folded" {
		t.Errorf("decoded subject %q", got)
	}
	if &root.Envelope.Sender[0] == &root.Envelope.From[0] {
		t.Error("Sender aliases From")
	}

	// Missing headers: all empty, and only a message root has them.
	root, err = Parse(strings.NewReader("X-Other: 1\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(root.Envelope, &Envelope{}) {
		t.Errorf("envelope of header-less message %+v", root.Envelope)
	}
	// Sender present wins over From.
	root, _ = Parse(strings.NewReader("From: a@x\r\nSender: s@x\r\nReply-To: ,\r\n\r\n"))
	if root.Envelope.Sender[0].Mailbox != "s" || root.Envelope.ReplyTo[0].Mailbox != "a" {
		t.Errorf("sender/reply-to defaults wrong: %+v", root.Envelope)
	}
}

func TestParseAddressList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Address
	}{
		{"", nil},
		{"   ", nil},
		{"alice@example.org", []Address{{Mailbox: "alice", Host: "example.org"}}},
		{"Alice <alice@example.org>", []Address{{Name: "Alice", Mailbox: "alice", Host: "example.org"}}},
		{`"Alice \"A\" Liddell" <alice@example.org>`, []Address{{Name: `Alice "A" Liddell`, Mailbox: "alice", Host: "example.org"}}},
		{"John Q. Public <jqp@example.org>", []Address{{Name: "John Q. Public", Mailbox: "jqp", Host: "example.org"}}},
		{"=?utf-8?q?J=C3=B6rg?= <j@example.de>", []Address{{Name: "=?utf-8?q?J=C3=B6rg?=", Mailbox: "j", Host: "example.de"}}},
		{"a@x, b@y,,c@z", []Address{{Mailbox: "a", Host: "x"}, {Mailbox: "b", Host: "y"}, {Mailbox: "c", Host: "z"}}},
		{"john.doe@example.org (John Doe)", []Address{{Name: "John Doe", Mailbox: "john.doe", Host: "example.org"}}},
		{"John Doe john@example.org", []Address{{Name: "John Doe", Mailbox: "john", Host: "example.org"}}},
		{`"john doe"@example.org`, []Address{{Mailbox: "john doe", Host: "example.org"}}},
		{"root", []Address{{Mailbox: "root", Host: MissingDomain}}},
		{"Name <>", []Address{{Name: "Name", Mailbox: MissingMailbox, Host: MissingDomain}}},
		{"<>", nil},
		{"user@[192.0.2.1]", []Address{{Mailbox: "user", Host: "[192.0.2.1]"}}},
		{"Group: ;", []Address{{Mailbox: "Group"}, {}}},
		{"Group: a@x, b@y; c@z", []Address{{Mailbox: "Group"}, {Mailbox: "a", Host: "x"}, {Mailbox: "b", Host: "y"}, {}, {Mailbox: "c", Host: "z"}}},
		{"Unterminated: a@x", []Address{{Mailbox: "Unterminated"}, {Mailbox: "a", Host: "x"}, {}}},
		{": a@x;", []Address{{Mailbox: "a", Host: "x"}}},
		{"<a@x", []Address{{Mailbox: "a", Host: "x"}}},
		{`"unterminated <a@x>`, []Address{{Mailbox: `unterminated <a@x>`, Host: MissingDomain}}},
		{"a@b@c", []Address{{Mailbox: "a@b", Host: "c"}}},
		{"Jörg <jörg@bücher.example>", []Address{{Name: "Jörg", Mailbox: "jörg", Host: "bücher.example"}}},
		{"a@x;b@y", []Address{{Mailbox: "a", Host: "x"}, {Mailbox: "b", Host: "y"}}},
		{"0)lice <a@x>", []Address{{Name: "0)lice", Mailbox: "a", Host: "x"}}},
		{"(unterminated comment a@x", nil},
		{"a@x (", []Address{{Mailbox: "a", Host: "x"}}},
	} {
		got := ParseAddressList(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAddressList(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
		checkAddresses(t, got)
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"=?UTF-8?Q?caf=C3=A9?=", "café"},
		{"=?ISO-8859-1?Q?caf=E9?= =?ISO-8859-1?Q?_au_lait?=", "café au lait"},
		{"=?windows-1252?Q?=80uro?=", "€uro"},
		{"=?utf-8*en?Q?hi?=", "hi"},
		{"=?x-unknown?Q?a=FFb?=", "a\uFFFDb"},
		{"=?UTF-8?B?broken", "=?UTF-8?B?broken"},
		{"raw \xe9 latin1", "raw \uFFFD latin1"},
		{"Ünïcödé", "Ünïcödé"},
	} {
		if got := DecodeHeader(tc.in); got != tc.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := (Address{Name: "=?utf-8?q?J=C3=B6rg?="}).DecodedName(); got != "Jörg" {
		t.Errorf("DecodedName = %q", got)
	}
}

func TestWalk(t *testing.T) {
	var msg string
	for _, tc := range parseCases() {
		if tc.name == "message/rfc822 attachment" {
			msg = tc.msg
		}
	}
	root, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	root.Walk(func(p *Part) bool {
		types = append(types, p.MediaType+"/"+p.MediaSubtype)
		return true
	})
	want := []string{"multipart/mixed", "text/plain", "message/rfc822", "text/plain"}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("Walk visited %v, want %v", types, want)
	}
	n := 0
	root.Walk(func(*Part) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("Walk did not stop: %d calls", n)
	}
}
