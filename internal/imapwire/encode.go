package imapwire

// The wire layer's response encoder: the data formats of RFC 9051 §9 and
// RFC 3501 §9 (atoms, numbers, strings, literals, flag lists, dates,
// ENVELOPE, BODY and BODYSTRUCTURE, sequence sets), written straight to the
// connection's *bufio.Writer. Message data streams from an io.Reader; no
// body is held in memory.

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
)

// maxQuoted is the longest string sent quoted; longer ones go as literals,
// which clients parse without scanning for escapes.
const maxQuoted = 4096

// Encoder writes IMAP response data. Its methods return the Encoder so that
// a response reads as one chain; the first write error sticks, is returned
// by Err and Flush, and makes every later call a no-op. It is not safe for
// concurrent use.
type Encoder struct {
	w    *bufio.Writer
	utf8 bool
	err  error
	num  [64]byte
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w *bufio.Writer) *Encoder { return &Encoder{w: w} }

// Reset makes e write to w (after STARTTLS or COMPRESS) and clears the
// sticky error.
func (e *Encoder) Reset(w *bufio.Writer) {
	e.w = w
	e.err = nil
}

// SetUTF8 sets UTF-8 mode (after ENABLE IMAP4rev2 or UTF8=ACCEPT): mailbox
// names go as UTF-8 instead of modified UTF-7, and valid UTF-8 strings may
// be quoted (RFC 9051 §4.3, RFC 6855 §3).
func (e *Encoder) SetUTF8(on bool) { e.utf8 = on }

// UTF8 reports the mode.
func (e *Encoder) UTF8() bool { return e.utf8 }

// Err returns the first write error.
func (e *Encoder) Err() error { return e.err }

// Flush flushes the writer and returns the first error.
func (e *Encoder) Flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

func (e *Encoder) ws(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *Encoder) wb(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *Encoder) wc(c byte) {
	if e.err == nil {
		e.err = e.w.WriteByte(c)
	}
}

// Atom writes s verbatim: an atom, a keyword, or prepared response syntax.
// The caller guarantees it holds no CR or LF.
func (e *Encoder) Atom(s string) *Encoder {
	e.ws(s)
	return e
}

// Byte writes one byte of syntax: '(', ')', '[', ...
func (e *Encoder) Byte(c byte) *Encoder {
	e.wc(c)
	return e
}

// SP writes a space.
func (e *Encoder) SP() *Encoder {
	e.wc(' ')
	return e
}

// CRLF ends a response line.
func (e *Encoder) CRLF() *Encoder {
	e.ws("\r\n")
	return e
}

// NIL writes NIL.
func (e *Encoder) NIL() *Encoder {
	e.ws("NIL")
	return e
}

// Number writes a 32-bit number.
func (e *Encoder) Number(n uint32) *Encoder {
	e.wb(strconv.AppendUint(e.num[:0], uint64(n), 10))
	return e
}

// Number64 writes a number64 (sizes, mod-sequences); negative values are
// written as 0.
func (e *Encoder) Number64(n int64) *Encoder {
	e.wb(strconv.AppendInt(e.num[:0], max(n, 0), 10))
	return e
}

// String writes s as a quoted string when that can carry it (no CR, LF;
// 7-bit, or valid UTF-8 in UTF-8 mode; at most 4096 bytes), else as a
// literal. NUL bytes, which neither may carry (RFC 9051 §4.3), are
// dropped.
func (e *Encoder) String(s string) *Encoder {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if quotable(s, e.utf8) {
		e.quoted(s)
	} else {
		e.ws("{")
		e.wb(strconv.AppendInt(e.num[:0], int64(len(s)), 10))
		e.ws("}\r\n")
		e.ws(s)
	}
	return e
}

// NString writes s, or NIL when s is empty (ENVELOPE and BODYSTRUCTURE
// fields, where jodmai's model has no empty-but-present value).
func (e *Encoder) NString(s string) *Encoder {
	if s == "" {
		return e.NIL()
	}
	return e.String(s)
}

// AString writes s as an atom when it is one (and not "NIL"), else as a
// string.
func (e *Encoder) AString(s string) *Encoder {
	if isAtom(s, &astringChars) && !strings.EqualFold(s, "NIL") {
		e.ws(s)
		return e
	}
	return e.String(s)
}

// Mailbox writes a mailbox name (UTF-8, as the store keeps it): INBOX as
// is, others in modified UTF-7 unless in UTF-8 mode, as an astring.
func (e *Encoder) Mailbox(name string) *Encoder {
	if name == "INBOX" {
		e.ws(name)
		return e
	}
	if !e.utf8 {
		name = EncodeMailboxUTF7(name)
	}
	return e.AString(name)
}

// Text writes resp-text: CR, LF and NUL become spaces, "{" becomes "("
// (clients look for literals in any line), and outside UTF-8 mode (or
// where the UTF-8 is invalid) 8-bit bytes become "?", so client data
// echoed in a message cannot break the response.
func (e *Encoder) Text(s string) *Encoder {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 || c == '{' || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		e.ws(s)
		return e
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\r' || c == '\n' || c == 0:
			b.WriteByte(' ')
			i++
		case c == '{':
			b.WriteByte('(')
			i++
		case c < 0x80:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if e.utf8 && !(r == utf8.RuneError && size == 1) {
				b.WriteString(s[i : i+size])
			} else {
				b.WriteByte('?')
			}
			i += size
		}
	}
	e.ws(b.String())
	return e
}

func (e *Encoder) quoted(s string) {
	e.wc('"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			e.ws(s[start:i])
			e.wc('\\')
			start = i
		}
	}
	e.ws(s[start:])
	e.wc('"')
}

// quotable reports whether s can be sent as a quoted string.
func quotable(s string, utf8OK bool) bool {
	if len(s) > maxQuoted {
		return false
	}
	high := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n' || c == 0:
			return false
		case c >= 0x80:
			high = true
		}
	}
	return !high || (utf8OK && utf8.ValidString(s))
}

// appendString appends s as a quoted string or literal (see
// Encoder.String).
func appendString(b []byte, s string, utf8OK bool) []byte {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !quotable(s, utf8OK) {
		b = append(b, '{')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, "}\r\n"...)
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// IsAtom reports whether s is an atom (RFC 9051 §9: 1*ATOM-CHAR), as a
// flag keyword must be; Flags writes no other keyword.
func IsAtom(s string) bool { return isAtom(s, &atomChars) }

// Flags writes a flag list: the system flags in f, then the keywords (those
// that are valid atoms; the store only holds such), then extra verbatim
// (`\*` for PERMANENTFLAGS, `\Recent` for IMAP4rev1).
func (e *Encoder) Flags(f store.Flags, keywords []string, extra ...string) *Encoder {
	e.wc('(')
	first := true
	sep := func() {
		if !first {
			e.wc(' ')
		}
		first = false
	}
	for _, sf := range [...]store.Flags{store.FlagAnswered, store.FlagFlagged, store.FlagDeleted, store.FlagSeen, store.FlagDraft} {
		if f&sf != 0 {
			sep()
			e.ws(flagName(sf))
		}
	}
	for _, k := range keywords {
		if isAtom(k, &atomChars) {
			sep()
			e.ws(k)
		}
	}
	for _, x := range extra {
		sep()
		e.ws(x)
	}
	e.wc(')')
	return e
}

// Literal writes a literal of size bytes copied from r: "{size}" CRLF and
// the data, streamed. If r ends early the encoder fails (the response is
// then unrecoverable and the session must close the connection).
func (e *Encoder) Literal(size int64, r io.Reader) *Encoder {
	return e.literal("{", size, r)
}

// Literal8 writes a literal8 (RFC 3516 §4.2): "~{size}" CRLF and the data,
// for BINARY[...] content that may hold NUL.
func (e *Encoder) Literal8(size int64, r io.Reader) *Encoder {
	return e.literal("~{", size, r)
}

func (e *Encoder) literal(open string, size int64, r io.Reader) *Encoder {
	e.ws(open)
	e.Number64(size)
	e.ws("}\r\n")
	if e.err != nil {
		return e
	}
	n, err := io.CopyN(e.w, r, size)
	if err != nil {
		if n < size && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		e.err = fmt.Errorf("imap: literal data: %w", err)
	}
	return e
}

// DateTime writes a date-time, "17-Jul-1996 02:44:25 -0700", quoted.
func (e *Encoder) DateTime(t time.Time) *Encoder {
	e.wb(t.AppendFormat(e.num[:0], `"_2-Jan-2006 15:04:05 -0700"`))
	return e
}

// NumSet writes a set of numbers (UIDs for COPYUID, VANISHED, ESEARCH) in
// compact form, see FormatNumSet.
func (e *Encoder) NumSet(nums []uint32) *Encoder {
	e.wb(AppendNumSet(e.num[:0], nums))
	return e
}

// SeqSet writes a sequence set.
func (e *Encoder) SeqSet(s SeqSet) *Encoder {
	e.ws(s.String())
	return e
}

// FormatNumSet formats numbers as a sequence-set, joining runs of
// consecutive ascending numbers into ranges ("1:3,7,9:10"). Order is kept,
// so that COPYUID's source and destination sets stay pairwise (RFC 4315
// §3); pass sorted numbers for the most compact form.
func FormatNumSet(nums []uint32) string { return string(AppendNumSet(nil, nums)) }

// AppendNumSet appends FormatNumSet(nums) to b.
func AppendNumSet(b []byte, nums []uint32) []byte {
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j] != math.MaxUint32 && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(nums[i]), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(nums[j]), 10)
		}
		i = j + 1
	}
	return b
}

// Envelope writes an ENVELOPE structure (RFC 9051 §7.5.2): date, subject,
// from, sender, reply-to, to, cc, bcc, in-reply-to, message-id. Empty
// fields are NIL; a nil env is all NIL.
func (e *Encoder) Envelope(env *message.Envelope) *Encoder {
	if env == nil {
		env = &message.Envelope{}
	}
	e.wc('(')
	e.NString(env.Date).SP()
	e.NString(env.Subject).SP()
	for _, l := range [...][]message.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.addressList(l)
		e.wc(' ')
	}
	e.NString(env.InReplyTo).SP()
	e.NString(env.MessageID)
	e.wc(')')
	return e
}

// addressList writes "(" 1*address ")" or NIL. Group syntax (RFC 9051
// §7.5.2): a group start is (NIL NIL "name" NIL), its end (NIL NIL NIL NIL).
func (e *Encoder) addressList(l []message.Address) {
	if len(l) == 0 {
		e.NIL()
		return
	}
	e.wc('(')
	for _, a := range l {
		e.wc('(')
		e.NString(a.Name).SP()
		e.NString(a.Adl).SP()
		e.NString(a.Mailbox).SP()
		e.NString(a.Host)
		e.wc(')')
	}
	e.wc(')')
}

// BodyStructure writes the extensible BODYSTRUCTURE of p (RFC 9051 §7.5.2,
// §9 body): extension data for every part.
func (e *Encoder) BodyStructure(p *message.Part) *Encoder {
	e.body(p, true)
	return e
}

// Body writes the non-extensible BODY form of p: BODYSTRUCTURE without
// extension data.
func (e *Encoder) Body(p *message.Part) *Encoder {
	e.body(p, false)
	return e
}

// emptyPart is what a multipart without parts, or a message/rfc822 that
// could not be parsed, gets as its body: RFC 9051 §9 body-type-mpart needs
// at least one body (Dovecot sends the same).
var emptyPart = &message.Part{
	MediaType: "text", MediaSubtype: "plain",
	Params:   []message.Param{{Key: "charset", Value: "us-ascii"}},
	Encoding: "7BIT",
}

func (e *Encoder) body(p *message.Part, ext bool) {
	if p == nil {
		p = emptyPart
	}
	e.wc('(')
	if p.IsMultipart() {
		// body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
		if len(p.Parts) == 0 {
			e.body(emptyPart, ext)
		}
		for _, c := range p.Parts {
			e.body(c, ext)
		}
		e.wc(' ')
		e.String(strings.ToUpper(p.MediaSubtype))
		if ext {
			e.wc(' ')
			e.params(p.Params)
			e.extTail(p)
		}
		e.wc(')')
		return
	}
	// body-type-1part: media type, body-fields, then per type.
	e.String(strings.ToUpper(p.MediaType)).SP()
	e.String(strings.ToUpper(p.MediaSubtype)).SP()
	e.params(p.Params)
	e.wc(' ')
	e.NString(p.ID).SP()
	e.NString(p.Description).SP()
	enc := p.Encoding
	if enc == "" {
		enc = "7BIT"
	}
	e.String(enc).SP()
	e.Number(partSize(p))
	switch {
	case p.MediaType == "message" && (p.MediaSubtype == "rfc822" || p.MediaSubtype == "global"):
		// body-type-msg: envelope, body and lines of the inner message.
		inner := p.Message
		var env *message.Envelope
		if inner != nil {
			env = inner.Envelope
		}
		e.wc(' ')
		e.Envelope(env)
		e.wc(' ')
		e.body(inner, ext)
		e.wc(' ')
		e.Number64(p.Lines)
	case p.MediaType == "text":
		e.wc(' ')
		e.Number64(p.Lines)
	}
	if ext {
		// body-ext-1part = body-fld-md5 [SP body-fld-dsp ...]
		e.wc(' ')
		e.NString(p.MD5)
		e.extTail(p)
	}
	e.wc(')')
}

// extTail writes SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
func (e *Encoder) extTail(p *message.Part) {
	e.wc(' ')
	if p.Disposition == "" {
		e.NIL()
	} else {
		e.wc('(')
		e.String(strings.ToUpper(p.Disposition)).SP()
		e.params(p.DispositionParams)
		e.wc(')')
	}
	e.wc(' ')
	switch len(p.Language) {
	case 0:
		e.NIL()
	case 1:
		e.String(p.Language[0])
	default:
		e.wc('(')
		for i, l := range p.Language {
			if i > 0 {
				e.wc(' ')
			}
			e.String(l)
		}
		e.wc(')')
	}
	e.wc(' ')
	e.NString(p.Location)
}

// params writes body-fld-param: "(" key value ... ")" or NIL. Keys are sent
// in upper case, as RFC 9051's examples do; values as they are.
func (e *Encoder) params(ps []message.Param) {
	if len(ps) == 0 {
		e.NIL()
		return
	}
	e.wc('(')
	for i, kv := range ps {
		if i > 0 {
			e.wc(' ')
		}
		e.String(strings.ToUpper(kv.Key)).SP()
		e.String(kv.Value)
	}
	e.wc(')')
}

// partSize is body-fld-octets: the size of the body in its transfer
// encoding, End - BodyStart.
func partSize(p *message.Part) uint32 {
	n := p.End - p.BodyStart
	switch {
	case n < 0:
		return 0
	case n > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(n)
}
