package imapwire

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/message"
)

// loopReader returns s over and over.
type loopReader struct {
	s   string
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.s[l.off:])
	l.off = (l.off + n) % len(l.s)
	return n, nil
}

// BenchmarkParseFetch parses the FETCH a Thunderbird-like client sends to
// list a folder.
func BenchmarkParseFetch(b *testing.B) {
	const cmd = "a17 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)]) (CHANGEDSINCE 12345)\r\n"
	d := NewDecoder(bufio.NewReader(&loopReader{s: cmd}), nil, DecoderOptions{})
	b.SetBytes(int64(len(cmd)))
	b.ReportAllocs()
	for b.Loop() {
		d.ReadTag()
		d.SP()
		d.ReadCommand()
		d.SP()
		d.ReadCommand()
		if _, err := d.ParseFetch(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSearch parses a typical client SEARCH.
func BenchmarkParseSearch(b *testing.B) {
	const cmd = "a18 UID SEARCH RETURN (ALL COUNT) CHARSET UTF-8 UNDELETED OR (FROM \"alice\" SINCE 1-Jan-2024) TEXT {6+}\r\nreport\r\n"
	d := NewDecoder(bufio.NewReader(&loopReader{s: cmd}), nil, DecoderOptions{})
	b.SetBytes(int64(len(cmd)))
	b.ReportAllocs()
	for b.Loop() {
		d.ReadTag()
		d.SP()
		d.ReadCommand()
		d.SP()
		d.ReadCommand()
		if _, err := d.ParseSearch(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeBodyStructure encodes the BODYSTRUCTURE of a message with
// nested multiparts, an attachment and an embedded message.
func BenchmarkEncodeBodyStructure(b *testing.B) {
	p, err := message.Parse(strings.NewReader(crlf(testMessages[2].msg)))
	if err != nil {
		b.Fatal(err)
	}
	e := NewEncoder(bufio.NewWriter(io.Discard))
	b.ReportAllocs()
	for b.Loop() {
		e.BodyStructure(p)
	}
	if err := e.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEncodeEnvelope encodes an ENVELOPE.
func BenchmarkEncodeEnvelope(b *testing.B) {
	p, err := message.Parse(strings.NewReader(crlf(testMessages[1].msg)))
	if err != nil {
		b.Fatal(err)
	}
	e := NewEncoder(bufio.NewWriter(io.Discard))
	b.ReportAllocs()
	for b.Loop() {
		e.Envelope(p.Envelope)
	}
}
