package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/message"
)

// fuzzOpts are small limits, so the fuzzer reaches them.
var fuzzOpts = DecoderOptions{MaxLineLength: 1024, MaxStringLength: 512, MaxCommandSize: 8192, MaxDiscard: 4096}

// maxASTBytes bounds the memory of one parsed command under fuzzOpts.
const maxASTBytes = 8 * 8192

// deepSize estimates the memory held by v.
func deepSize(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return int(v.Elem().Type().Size()) + deepSizeInner(v.Elem())
	case reflect.Slice:
		n := v.Cap() * int(v.Type().Elem().Size())
		for i := 0; i < v.Len(); i++ {
			n += deepSizeInner(v.Index(i))
		}
		return n
	case reflect.String:
		return v.Len()
	case reflect.Struct:
		return deepSizeInner(v)
	}
	return 0
}

// deepSizeInner is deepSize without the value's own size.
func deepSizeInner(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Struct:
		n := 0
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Type == reflect.TypeOf((*Decoder)(nil)) {
				continue
			}
			n += deepSize(v.Field(i))
		}
		return n
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.String:
		return deepSize(v)
	}
	return 0
}

// fuzzCommand reads one command the way the session will: tag, name, and
// the grammar function for the name. It returns the parsed value.
func fuzzCommand(d *Decoder) (any, error) {
	if _, err := d.ReadTag(); err != nil {
		return nil, err
	}
	if err := d.SP(); err != nil {
		return nil, err
	}
	name, err := d.ReadCommand()
	if err != nil {
		return nil, err
	}
	if name == "UID" {
		if err := d.SP(); err != nil {
			return nil, err
		}
		if name, err = d.ReadCommand(); err != nil {
			return nil, err
		}
	}
	switch name {
	case "FETCH":
		return d.ParseFetch()
	case "SEARCH":
		return d.ParseSearch()
	case "SORT":
		return d.ParseSort()
	case "THREAD":
		return d.ParseThread()
	case "STORE":
		return d.ParseStore()
	case "LIST":
		return d.ParseList()
	case "STATUS":
		return d.ParseStatus()
	case "SELECT", "EXAMINE":
		return d.ParseSelect()
	case "CREATE":
		return d.ParseCreate()
	case "ENABLE":
		caps, err := d.ParseEnable()
		for _, c := range caps {
			if c == "UTF8=ACCEPT" || c == "IMAP4REV2" {
				d.SetUTF8(true)
			}
		}
		return caps, err
	case "ID":
		return d.ParseID()
	case "COMPRESS":
		return d.ParseCompress()
	case "AUTHENTICATE":
		c, err := d.ParseAuthenticate()
		if err != nil {
			return nil, err
		}
		_, err = d.ReadSASLResponse()
		return c, err
	case "IDLE":
		if err := d.ExpectCRLF(); err != nil {
			return nil, err
		}
		return nil, d.ReadIdleDone()
	case "LOGIN", "RENAME":
		a, err := d.ReadAString()
		if err != nil {
			return nil, err
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		b, err := d.ReadAString()
		if err != nil {
			return nil, err
		}
		return []string{a, b}, d.ExpectCRLF()
	case "LSUB":
		if err := d.SP(); err != nil {
			return nil, err
		}
		ref, err := d.ReadMailbox()
		if err != nil {
			return nil, err
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		pat, err := d.ReadListMailbox()
		if err != nil {
			return nil, err
		}
		return []string{ref, pat}, d.ExpectCRLF()
	case "COPY", "MOVE":
		if err := d.SP(); err != nil {
			return nil, err
		}
		set, err := d.ReadSeqSet()
		if err != nil {
			return nil, err
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		mbox, err := d.ReadMailbox()
		if err != nil {
			return nil, err
		}
		return []any{set, mbox}, d.ExpectCRLF()
	case "APPEND":
		mbox, err := d.ParseAppendMailbox()
		if err != nil {
			return nil, err
		}
		for {
			m, err := d.ReadAppendMessage(1000)
			if err != nil {
				return nil, err
			}
			if _, err := io.Copy(io.Discard, m.Data); err != nil {
				return nil, err
			}
			done, err := d.AppendDone()
			if err != nil || done {
				return mbox, err
			}
		}
	}
	return nil, d.ExpectCRLF()
}

// decodeCommands runs every command in input through fuzzCommand,
// resynchronising after protocol errors as the session will, and checks
// that nothing panics, every loop makes progress, errors are typed, and
// parsed commands stay within a memory bound.
func decodeCommands(t *testing.T, input []byte) {
	d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(input), 64), func() error { return nil }, fuzzOpts)
	for range len(input) + 2 {
		v, err := fuzzCommand(d)
		if err == nil {
			if n := deepSize(reflect.ValueOf(v)); n > maxASTBytes {
				t.Fatalf("parsed command holds %d bytes", n)
			}
			continue
		}
		if IsProtocolError(err) {
			var se *SyntaxError
			if errors.As(err, &se) && (strings.ContainsAny(se.Error(), "\r\n\x00") || len(se.Error()) > 200) {
				t.Fatalf("unsafe error text %q", se.Error())
			}
			if err := d.SkipLine(); err != nil {
				if errors.Is(err, ErrCannotResync) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				t.Fatalf("SkipLine: %v", err)
			}
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		t.Fatalf("untyped error: %v", err)
	}
	t.Fatalf("no progress")
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		"a1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID)])\r\n",
		"a2 FETCH 1 (BODY[1.2.MIME] BINARY.PEEK[1]<0.10> BINARY.SIZE[2] PREVIEW (LAZY) MODSEQ) (CHANGEDSINCE 5 VANISHED)\r\n",
		"a3 FETCH $ FULL\r\n",
		"a4 UID SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET UTF-8 OR (FROM {3}\r\nabc SINCE 1-Jan-2020) NOT UID 1:5,7 MODSEQ \"/flags/\\\\draft\" all 5\r\n",
		"a5 SEARCH OLDER 5 YOUNGER 6 EMAILID abc SAVEDBEFORE \"1-Feb-2020\" LARGER 100 HEADER X-Foo \"\" KEYWORD $Junk\r\n",
		"a6 UID SORT (REVERSE DATE DISPLAYFROM) UTF-8 ALL\r\n",
		"a7 THREAD REFERENCES UTF-8 UNSEEN\r\n",
		"a8 STORE 1:3 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Seen $Forwarded)\r\n",
		"a9 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (% \"Entw&APw-rfe/*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN SIZE))\r\n",
		"b1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT MAILBOXID)\r\n",
		"b2 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1:10 41:50)) CONDSTORE)\r\n",
		"b3 APPEND Drafts (\\Seen) \" 5-Jan-2024 10:00:00 +0100\" {5}\r\nhello ~{2}\r\nhi UTF8 (~{1}\r\nx)\r\n",
		"b4 APPEND INBOX {5000+}\r\n" + strings.Repeat("x", 50) + "\r\nb5 NOOP\r\n",
		"b6 ENABLE UTF8=ACCEPT CONDSTORE\r\nb7 SELECT \"Entwürfe\"\r\n",
		"b8 ID (\"name\" \"x\" \"version\" NIL)\r\n",
		"b9 AUTHENTICATE PLAIN =\r\n*\r\n",
		"c1 AUTHENTICATE SCRAM-SHA-256\r\nbiws\r\n",
		"c2 COMPRESS DEFLATE\r\nc3 IDLE\r\nDONE\r\n",
		"c4 CREATE \"a b\" (USE (\\Sent))\r\nc5 LOGIN {4+}\r\nuser \"pa\\\"ss\"\r\n",
		"c6 LSUB \"\" %\r\nc7 UID MOVE 1:* Trash\r\n",
		"* BAD\r\n{3}\r\nabc\r\n",
		"x SEARCH " + strings.Repeat("(", 70) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(decodeCommands)
}

// FuzzBodyStructure encodes BODYSTRUCTURE, BODY and ENVELOPE of arbitrary
// messages and checks the output against the RFC 9051 grammar.
func FuzzBodyStructure(f *testing.F) {
	for _, tc := range testMessages {
		f.Add([]byte(crlf(tc.msg)))
	}
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/digest; boundary=x\r\n\r\n--x\r\n\r\nSubject: \"\\\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		p, err := message.Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		for _, utf8 := range []bool{false, true} {
			for _, what := range []string{"BODYSTRUCTURE", "BODY", "ENVELOPE"} {
				got := encode(t, utf8, func(e *Encoder) {
					switch what {
					case "BODYSTRUCTURE":
						e.BodyStructure(p)
					case "BODY":
						e.Body(p)
					default:
						e.Envelope(p.Envelope)
					}
				})
				if err := validateResponseData(what, got, utf8); err != nil {
					t.Fatalf("%s (utf8 %v) invalid: %v\n%q", what, utf8, err, got)
				}
			}
		}
	})
}

func TestDecodeCommandSeeds(t *testing.T) {
	// The seeds parse without protocol errors where they are meant to.
	for _, s := range []string{
		"a1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To)])\r\n",
		"b3 APPEND Drafts (\\Seen) \" 5-Jan-2024 10:00:00 +0100\" {5}\r\nhello ~{2}\r\nhi UTF8 (~{1}\r\nx)\r\n",
		"b6 ENABLE UTF8=ACCEPT CONDSTORE\r\nb7 SELECT \"Entwürfe\"\r\n",
		"c2 COMPRESS DEFLATE\r\nc3 IDLE\r\nDONE\r\n",
	} {
		d := NewDecoder(bufio.NewReader(strings.NewReader(s)), nil, fuzzOpts)
		for {
			_, err := fuzzCommand(d)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
		}
	}
	decodeCommands(t, []byte("a SEARCH "+strings.Repeat("ALL ", 3000)+"ALL\r\n"))
}
