package imapwire

// The wire layer's command decoder: the primitives of RFC 9051 §9 and RFC
// 3501 §9 (atoms, strings, literals, numbers, sets, dates, flags, mailbox
// names), read straight from the connection's *bufio.Reader.
//
// A command is parsed incrementally, by the handler calling primitives in
// grammar order, so that an APPEND literal can stream to disk instead of
// memory. The Parse* functions in fetch.go, search.go and misc.go are built
// from these primitives.
//
// Memory is bounded per command: no line longer than MaxLineLength, no
// string longer than MaxStringLength, and at most MaxCommandSize bytes of
// command text, in-memory literals and parsed elements (each list item,
// search key and set range is charged a fixed cost) between two command
// ends. Streamed literals (LiteralReader) are not held and not charged.
//
// Errors. Every failure caused by the client's bytes is one of three types,
// all answered with BAD (or NO [TOOBIG]) after which the session calls
// SkipLine and reads the next command:
//
//   - *SyntaxError: the input does not match the grammar.
//   - *LimitError: the input exceeds a decoder limit.
//   - *LiteralTooBigError: a literal was refused before it was read.
//
// Anything else is an I/O error from the connection (or io.EOF when the
// client closed it between commands, io.ErrUnexpectedEOF inside a command)
// and ends the session. No input makes the decoder panic.

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jodmai/jodmai/internal/store"
)

// Default decoder limits, used for zero DecoderOptions fields.
const (
	// DefaultMaxLineLength is the longest command line accepted, literals
	// excluded. RFC 7162 §4 asks servers to accept at least 8192 octets.
	DefaultMaxLineLength = 64 << 10

	// DefaultMaxStringLength is the longest quoted string or literal the
	// decoder holds in memory (streamed APPEND literals have their own
	// limit, given to ReadLiteral / ReadAppendMessage).
	DefaultMaxStringLength = 64 << 10

	// DefaultMaxCommandSize bounds the memory one command may take.
	DefaultMaxCommandSize = 1 << 20

	// DefaultMaxDiscard is how much input SkipLine reads and throws away to
	// find the next command (the rest of an over-long line, the data of a
	// refused non-synchronizing literal) before giving up.
	DefaultMaxDiscard = 1 << 20

	// MaxLiteralMinus is the largest non-synchronizing literal a client may
	// send to a server that advertises LITERAL- (or only IMAP4rev2, which
	// includes it): RFC 7888 §5, RFC 9051 §4.3.
	MaxLiteralMinus = 4096

	// elemCost is what each parsed element (list item, search key, set
	// range, fetch item) is charged against MaxCommandSize, for the memory
	// its parsed form takes beyond the bytes that spelled it.
	elemCost = 32
)

// DecoderOptions configures a Decoder. Zero fields take the defaults above.
type DecoderOptions struct {
	// MaxLineLength bounds the bytes of one line outside literals (CRLF
	// excluded). A longer line gives a *LimitError.
	MaxLineLength int

	// MaxStringLength bounds one string (quoted or literal) held in memory.
	// A longer literal gives a *LiteralTooBigError, before any continuation
	// is sent; a longer quoted string a *LimitError.
	MaxStringLength int

	// MaxCommandSize bounds the memory of one command (see the file
	// comment). Exceeding it gives a *LimitError or *LiteralTooBigError.
	MaxCommandSize int

	// MaxDiscard bounds the bytes SkipLine discards; beyond it SkipLine
	// returns ErrCannotResync and the session must close the connection.
	MaxDiscard int64

	// LiteralPlus is set when the server advertises LITERAL+ (RFC 7888):
	// non-synchronizing literals of any size within the other limits.
	// Otherwise the server offers LITERAL- (part of IMAP4rev2) and a
	// non-synchronizing literal over MaxLiteralMinus bytes is refused with
	// a *LiteralTooBigError whose Minus field is set.
	LiteralPlus bool

	// UTF8 is the initial mailbox-name mode; see Decoder.SetUTF8.
	UTF8 bool
}

func (o *DecoderOptions) setDefaults() {
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = DefaultMaxLineLength
	}
	if o.MaxStringLength <= 0 {
		o.MaxStringLength = DefaultMaxStringLength
	}
	if o.MaxCommandSize <= 0 {
		o.MaxCommandSize = DefaultMaxCommandSize
	}
	if o.MaxDiscard <= 0 {
		o.MaxDiscard = DefaultMaxDiscard
	}
}

// SyntaxError reports input that does not match the IMAP grammar. Its text
// never contains raw client bytes, so it can go into a BAD response as is.
type SyntaxError struct {
	Elem string // the grammar element being read ("sequence-set", "date-time")
	Msg  string // what was wrong
}

func (e *SyntaxError) Error() string { return e.Elem + ": " + e.Msg }

// MailboxNameError reports a mailbox name that is well-formed IMAP syntax
// but cannot name a mailbox: invalid modified UTF-7, invalid UTF-8, or a
// control character. The command is answered NO, not BAD (Dovecot does the
// same, and imaptest's atoms test expects it): the line was valid, only
// the name is refused.
type MailboxNameError struct {
	Msg string
}

func (e *MailboxNameError) Error() string { return "invalid mailbox name: " + e.Msg }

// LimitError reports input beyond a decoder limit: an over-long line or
// quoted string, a command taking too much memory, or too deep nesting.
type LimitError struct {
	What  string // "line", "quoted string", "command", "search nesting", ...
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s too long (limit %d)", e.What, e.Limit)
}

// LiteralTooBigError reports a literal refused before its data was read.
//
// For a synchronizing literal ({n}) no continuation was sent, so the client
// sends no data: answer (NO [TOOBIG] for APPEND, BAD otherwise) and call
// SkipLine, which then has nothing to skip. For a non-synchronizing literal
// ({n+}) the client sends the data anyway: answer BAD [TOOBIG] (RFC 7888
// §4 requires it when Minus is set) and call SkipLine, which reads and
// discards the data if it is within MaxDiscard, and otherwise returns
// ErrCannotResync so the session sends BYE and closes the connection (the
// two choices RFC 7888 §4 offers). Discarding a bounded amount keeps a
// slightly over-limit APPEND from costing the client its connection;
// closing beyond it keeps a hostile client from tying up the session.
type LiteralTooBigError struct {
	Size    int64 // the announced size
	Max     int64 // the limit it exceeded
	NonSync bool  // {n+}: the client sends the data without waiting
	Minus   bool  // refused by the LITERAL- rule (non-sync over 4096 bytes)
	Binary  bool  // literal8 (~{n}, RFC 3516)
}

func (e *LiteralTooBigError) Error() string {
	if e.Minus {
		return fmt.Sprintf("non-synchronizing literal of %d bytes exceeds %d bytes (LITERAL-)", e.Size, e.Max)
	}
	return fmt.Sprintf("literal of %d bytes exceeds the limit of %d bytes", e.Size, e.Max)
}

// ErrCannotResync is returned by SkipLine when finding the next command
// would mean discarding more than MaxDiscard bytes. The session must close
// the connection.
var ErrCannotResync = errors.New("imap: too much input to discard to find the next command")

// ErrAuthCanceled is returned by ReadSASLResponse when the client cancels
// an AUTHENTICATE exchange with "*" (RFC 9051 §6.2.2); answer BAD.
var ErrAuthCanceled = errors.New("imap: authentication canceled by client")

// errLiteralPending is a programming error: a primitive was called while a
// streamed literal had unread data.
var errLiteralPending = errors.New("imap: decoder used while a literal is being read")

// IsProtocolError reports whether err is the client's fault (a
// *SyntaxError, *LimitError, *LiteralTooBigError or *MailboxNameError, or
// ErrAuthCanceled), to be answered with BAD/NO, as opposed to an I/O error
// that ends the session.
func IsProtocolError(err error) bool {
	var se *SyntaxError
	var le *LimitError
	var te *LiteralTooBigError
	var ne *MailboxNameError
	return errors.As(err, &se) || errors.As(err, &le) || errors.As(err, &te) || errors.As(err, &ne) || errors.Is(err, ErrAuthCanceled)
}

func syntaxErr(elem, format string, args ...any) error {
	return &SyntaxError{Elem: elem, Msg: fmt.Sprintf(format, args...)}
}

// describe names the byte c for an error message without echoing raw input.
func describe(c byte) string {
	switch c {
	case '\r', '\n':
		return "end of line"
	case ' ':
		return "space"
	}
	return strconv.QuoteRuneToASCII(rune(c))
}

// Decoder reads IMAP commands from a connection. It is not safe for
// concurrent use. See the file comment for its memory and error contract.
type Decoder struct {
	r    *bufio.Reader
	cont func() error
	opt  DecoderOptions
	utf8 bool

	lineLen int  // bytes of the current line consumed (outside literals)
	used    int  // memory charged to the current command
	idle    bool // no byte of the next command read yet (the last one ended)

	lit     *LiteralReader // the streamed literal being read, if any
	discard int64          // data of a refused non-sync literal, for SkipLine

	appendParen bool // an APPEND "UTF8 (" literal8 awaits its ")"

	buf []byte // scratch for atoms and quoted strings
}

// NewDecoder returns a decoder reading from r. cont is called before the
// data of an accepted synchronizing literal is read: it must write the
// continuation request ("+ Ready for literal data\r\n") and flush it. A nil
// cont sends nothing (tests only). opts may be the zero value.
func NewDecoder(r *bufio.Reader, cont func() error, opts DecoderOptions) *Decoder {
	opts.setDefaults()
	return &Decoder{r: r, cont: cont, opt: opts, utf8: opts.UTF8, idle: true}
}

// Reset makes d read from r, as after STARTTLS or COMPRESS; the command
// state is cleared. The caller must first check that the old reader had
// nothing buffered (Buffered), or the client could inject commands into the
// protected stream (RFC 9051 §11.1, RFC 4978 §6).
func (d *Decoder) Reset(r *bufio.Reader) {
	d.r = r
	d.endCommand()
	d.lit = nil
	d.discard = 0
}

// Buffered returns the number of bytes read from the connection but not yet
// consumed: nonzero after a command means the client pipelined more.
func (d *Decoder) Buffered() int { return d.r.Buffered() }

// SetUTF8 sets the mailbox-name mode: with on (after ENABLE IMAP4rev2 or
// UTF8=ACCEPT) names are UTF-8 on the wire; otherwise they are modified
// UTF-7 (RFC 3501 §5.1.3) and ReadMailbox decodes them.
func (d *Decoder) SetUTF8(on bool) { d.utf8 = on }

// UTF8 reports the mailbox-name mode.
func (d *Decoder) UTF8() bool { return d.utf8 }

// endCommand resets the per-command state after a command's last CRLF.
func (d *Decoder) endCommand() {
	d.lineLen = 0
	d.used = 0
	d.idle = true
	d.appendParen = false
}

func (d *Decoder) readErr(err error) error {
	if errors.Is(err, io.EOF) {
		if d.idle {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	return err
}

// peek returns the next byte without consuming it, enforcing the line and
// command limits.
func (d *Decoder) peek() (byte, error) {
	if d.lit != nil && d.lit.remaining > 0 {
		return 0, errLiteralPending
	}
	b, err := d.r.Peek(1)
	if err != nil {
		return 0, d.readErr(err)
	}
	c := b[0]
	if c != '\r' && c != '\n' {
		if d.lineLen >= d.opt.MaxLineLength {
			return 0, &LimitError{What: "line", Limit: int64(d.opt.MaxLineLength)}
		}
		if d.used >= d.opt.MaxCommandSize {
			return 0, &LimitError{What: "command", Limit: int64(d.opt.MaxCommandSize)}
		}
	}
	d.idle = false
	return c, nil
}

// advance consumes the byte peek returned.
func (d *Decoder) advance() {
	_, _ = d.r.ReadByte() // cannot fail after a successful Peek
	d.lineLen++
	d.used++
}

// charge accounts n bytes of memory to the current command.
func (d *Decoder) charge(n int) error {
	d.used += n
	if d.used > d.opt.MaxCommandSize {
		return &LimitError{What: "command", Limit: int64(d.opt.MaxCommandSize)}
	}
	return nil
}

// PeekByte returns the next byte of the command without consuming it.
func (d *Decoder) PeekByte() (byte, error) { return d.peek() }

// AcceptByte consumes the next byte if it is c and reports whether it did.
func (d *Decoder) AcceptByte(c byte) (bool, error) {
	b, err := d.peek()
	if err != nil {
		return false, err
	}
	if b != c {
		return false, nil
	}
	d.advance()
	return true, nil
}

// ExpectByte consumes the next byte, which must be c; elem names the
// grammar element for the error.
func (d *Decoder) ExpectByte(c byte, elem string) error {
	b, err := d.peek()
	if err != nil {
		return err
	}
	if b != c {
		return syntaxErr(elem, "expected %s, got %s", describe(c), describe(b))
	}
	d.advance()
	return nil
}

// SP consumes exactly one space.
func (d *Decoder) SP() error { return d.ExpectByte(' ', "SP") }

// AcceptSP consumes a space if one is next.
func (d *Decoder) AcceptSP() (bool, error) { return d.AcceptByte(' ') }

// AtEOL reports whether the command line ends here (CR or LF is next).
func (d *Decoder) AtEOL() (bool, error) {
	b, err := d.peek()
	if err != nil {
		return false, err
	}
	return b == '\r' || b == '\n', nil
}

// ExpectCRLF consumes the line end that finishes a command: CRLF, or a bare
// LF (liberal in what we accept). It ends the command: the per-command
// memory budget is reset.
func (d *Decoder) ExpectCRLF() error {
	if err := d.eol(); err != nil {
		return err
	}
	d.endCommand()
	return nil
}

// eol consumes CRLF or LF without ending the command (literal headers).
func (d *Decoder) eol() error {
	b, err := d.peek()
	if err != nil {
		return err
	}
	switch b {
	case '\n':
		d.advance()
	case '\r':
		d.advance()
		b, err = d.peek()
		if err != nil {
			return err
		}
		if b != '\n' {
			return syntaxErr("CRLF", "CR not followed by LF")
		}
		d.advance()
	default:
		return syntaxErr("CRLF", "expected end of line, got %s", describe(b))
	}
	d.lineLen = 0
	return nil
}

// Character classes of RFC 9051 §9.
var (
	atomChars    [256]bool // ATOM-CHAR
	astringChars [256]bool // ASTRING-CHAR = ATOM-CHAR / resp-specials
	tagChars     [256]bool // ASTRING-CHAR except "+"
	listChars    [256]bool // list-char = ATOM-CHAR / list-wildcards / resp-specials
)

func init() {
	for c := 0x21; c < 0x7f; c++ {
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			continue
		}
		atomChars[c] = true
	}
	astringChars = atomChars
	astringChars[']'] = true
	tagChars = astringChars
	tagChars['+'] = false
	listChars = astringChars
	listChars['%'] = true
	listChars['*'] = true
}

// readWhile reads 1 or more bytes of class, returning them in d.buf.
func (d *Decoder) readWhile(class *[256]bool, elem string) ([]byte, error) {
	d.buf = d.buf[:0]
	for {
		c, err := d.peek()
		if err != nil {
			return nil, err
		}
		if !class[c] {
			if len(d.buf) == 0 {
				return nil, syntaxErr(elem, "unexpected %s", describe(c))
			}
			return d.buf, nil
		}
		n := d.scanBuffered(func(c byte) bool { return class[c] })
		d.buf = append(d.buf, d.consumeBuffered(n)...)
	}
}

// scanBuffered returns how many buffered bytes from the read position
// satisfy ok, stopping where the line or command limit would be reached
// (the next peek then reports it). After a successful peek it is at least
// 1 if ok holds for the peeked byte.
func (d *Decoder) scanBuffered(ok func(byte) bool) int {
	buf, _ := d.r.Peek(d.r.Buffered())
	lim := min(len(buf), d.opt.MaxLineLength-d.lineLen, d.opt.MaxCommandSize-d.used)
	n := 0
	for n < lim && ok(buf[n]) {
		n++
	}
	return n
}

// consumeBuffered consumes n buffered bytes and returns them; the slice is
// valid until the next read.
func (d *Decoder) consumeBuffered(n int) []byte {
	b, _ := d.r.Peek(n)
	_, _ = d.r.Discard(n)
	d.lineLen += n
	d.used += n
	return b
}

// ReadTag reads a command tag: 1*<any ASTRING-CHAR except "+">. It starts a
// command; an io.EOF from it means the client closed the connection between
// commands.
func (d *Decoder) ReadTag() (string, error) {
	b, err := d.readWhile(&tagChars, "tag")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ReadAtom reads an atom (1*ATOM-CHAR) as sent.
func (d *Decoder) ReadAtom() (string, error) {
	b, err := d.readWhile(&atomChars, "atom")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ReadCommand reads a command name (an atom) in upper case.
func (d *Decoder) ReadCommand() (string, error) {
	b, err := d.readWhile(&atomChars, "command")
	if err != nil {
		return "", err
	}
	return upperASCII(b), nil
}

// readKeyword reads an atom in upper case (grammar keywords).
func (d *Decoder) readKeyword(elem string) (string, error) {
	b, err := d.readWhile(&atomChars, elem)
	if err != nil {
		return "", err
	}
	return upperASCII(b), nil
}

// upperASCII upper-cases ASCII letters; it avoids an allocation when b is
// already a known keyword.
func upperASCII(b []byte) string {
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			u := make([]byte, len(b))
			copy(u, b[:i])
			for j := i; j < len(b); j++ {
				c := b[j]
				if 'a' <= c && c <= 'z' {
					c -= 'a' - 'A'
				}
				u[j] = c
			}
			return string(u)
		}
	}
	return string(b)
}

// ReadAString reads an astring: 1*ASTRING-CHAR or a string.
func (d *Decoder) ReadAString() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if c == '"' || c == '{' || (c == '~' && d.literal8Next()) {
		return d.ReadString()
	}
	b, err := d.readWhile(&astringChars, "astring")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ReadString reads a string: quoted (with \\ and \" escapes) or a literal
// ({n} synchronizing, {n+} non-synchronizing) held in memory. A literal
// over MaxStringLength (or the command budget) gives *LiteralTooBigError
// before any continuation is sent. literal8 is not a string (RFC 3516 §4.2
// allows it only in APPEND).
func (d *Decoder) ReadString() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	switch c {
	case '"':
		return d.readQuoted()
	case '{':
		return d.readLiteralString()
	case '~':
		if d.literal8Next() {
			return "", syntaxErr("string", "literal8 not allowed here")
		}
	}
	return "", syntaxErr("string", "expected quoted string or literal, got %s", describe(c))
}

// literal8Next reports whether "~{" is next ("~" alone is an ATOM-CHAR).
// Peeking two bytes cannot block: a "~" is never a command's last byte.
func (d *Decoder) literal8Next() bool {
	b, err := d.r.Peek(2)
	return err == nil && b[0] == '~' && b[1] == '{'
}

// readQuoted reads a quoted string. QUOTED-CHAR is any TEXT-CHAR but the
// quoted-specials, or an escaped quoted-special. 8-bit bytes are accepted
// (RFC 9051 allows UTF-8; many IMAP4rev1 clients send it too); CR, LF and
// NUL are not.
func (d *Decoder) readQuoted() (string, error) {
	if err := d.ExpectByte('"', "quoted"); err != nil {
		return "", err
	}
	d.buf = d.buf[:0]
	for {
		c, err := d.peek()
		if err != nil {
			return "", err
		}
		switch c {
		case '"':
			d.advance()
			return string(d.buf), nil
		case '\\':
			d.advance()
			e, err := d.peek()
			if err != nil {
				return "", err
			}
			if e != '"' && e != '\\' {
				return "", syntaxErr("quoted", "invalid escape of %s", describe(e))
			}
			d.advance()
			c = e
		case '\r', '\n':
			return "", syntaxErr("quoted", "unterminated quoted string")
		case 0:
			return "", syntaxErr("quoted", "NUL in quoted string")
		default:
			n := d.scanBuffered(func(c byte) bool { return c != '"' && c != '\\' && c != '\r' && c != '\n' && c != 0 })
			if len(d.buf)+n > d.opt.MaxStringLength {
				return "", &LimitError{What: "quoted string", Limit: int64(d.opt.MaxStringLength)}
			}
			d.buf = append(d.buf, d.consumeBuffered(n)...)
			continue
		}
		if len(d.buf) >= d.opt.MaxStringLength {
			return "", &LimitError{What: "quoted string", Limit: int64(d.opt.MaxStringLength)}
		}
		d.buf = append(d.buf, c)
	}
}

// literalHeader is a parsed "{n}", "{n+}" or "~{n}" and its CRLF.
type literalHeader struct {
	size    int64
	nonSync bool
	binary  bool
}

// readLiteralHeader reads a literal's announcement through its line end and
// checks the size against max and the LITERAL- rule. On refusal it sets up
// SkipLine: a synchronizing literal ends the line (the client will not send
// the data), a non-synchronizing one leaves its data to discard.
func (d *Decoder) readLiteralHeader(max int64, allowBinary bool) (literalHeader, error) {
	var h literalHeader
	c, err := d.peek()
	if err != nil {
		return h, err
	}
	if c == '~' {
		if !allowBinary {
			return h, syntaxErr("literal", "literal8 not allowed here")
		}
		d.advance()
		h.binary = true
	}
	if err := d.ExpectByte('{', "literal"); err != nil {
		return h, err
	}
	n, err := d.readNumber64("literal size")
	if err != nil {
		return h, err
	}
	h.size = int64(n)
	if h.nonSync, err = d.AcceptByte('+'); err != nil {
		return h, err
	}
	if err := d.ExpectByte('}', "literal"); err != nil {
		return h, err
	}
	if err := d.eol(); err != nil {
		return h, err
	}
	limit, minus := max, false
	if h.nonSync && !d.opt.LiteralPlus && h.size > MaxLiteralMinus {
		limit, minus = MaxLiteralMinus, true
	}
	if h.size > limit {
		if h.nonSync {
			d.discard = h.size
		} else {
			// The client waits for a continuation it will not get: the
			// command ends here.
			d.endCommand()
		}
		return h, &LiteralTooBigError{Size: h.size, Max: limit, NonSync: h.nonSync, Minus: minus, Binary: h.binary}
	}
	if !h.nonSync && d.cont != nil {
		if err := d.cont(); err != nil {
			return h, err
		}
	}
	return h, nil
}

func (d *Decoder) readLiteralString() (string, error) {
	limit := min(int64(d.opt.MaxStringLength), max(int64(d.opt.MaxCommandSize-d.used), 0))
	h, err := d.readLiteralHeader(limit, false)
	if err != nil {
		return "", err
	}
	b := make([]byte, h.size)
	if _, err := io.ReadFull(d.r, b); err != nil {
		return "", d.readErr(err)
	}
	d.used += len(b)
	if bytes.IndexByte(b, 0) >= 0 {
		// RFC 9051 §4.3: literal is CHAR8, which excludes NUL.
		return "", syntaxErr("literal", "NUL in literal")
	}
	return string(b), nil
}

// ReadNString reads an nstring: a string or NIL.
func (d *Decoder) ReadNString() (s string, isNil bool, err error) {
	c, err := d.peek()
	if err != nil {
		return "", false, err
	}
	if c == 'N' || c == 'n' {
		a, err := d.readKeyword("nstring")
		if err != nil {
			return "", false, err
		}
		if a != "NIL" {
			return "", false, syntaxErr("nstring", "expected string or NIL")
		}
		return "", true, nil
	}
	s, err = d.ReadString()
	return s, false, err
}

// ReadList reads a parenthesized list, "(" [item *(SP item)] ")", calling fn
// to read each item. The empty list is accepted; callers check counts.
func (d *Decoder) ReadList(fn func() error) error {
	if err := d.ExpectByte('(', "list"); err != nil {
		return err
	}
	if ok, err := d.AcceptByte(')'); ok || err != nil {
		return err
	}
	for {
		if err := d.charge(elemCost); err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
		c, err := d.peek()
		if err != nil {
			return err
		}
		switch c {
		case ')':
			d.advance()
			return nil
		case ' ':
			d.advance()
		default:
			return syntaxErr("list", "expected SP or \")\", got %s", describe(c))
		}
	}
}

// ReadFlagList reads a flag-list, "(" [flag *(SP flag)] ")". System flags
// (case-insensitive) become store.Flags, keywords are returned as sent.
// \Recent is accepted and ignored (IMAP4rev1 clients may send it; it cannot
// be set). Other \-flags are errors.
func (d *Decoder) ReadFlagList() (store.Flags, []string, error) {
	var flags store.Flags
	var kws []string
	err := d.ReadList(func() error {
		f, kw, err := d.readFlag()
		flags |= f
		if kw != "" {
			kws = append(kws, kw)
		}
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return flags, kws, nil
}

// systemFlags maps the upper-cased names of the system flags (RFC 9051
// §2.3.2).
var systemFlags = map[string]store.Flags{
	"SEEN":     store.FlagSeen,
	"ANSWERED": store.FlagAnswered,
	"FLAGGED":  store.FlagFlagged,
	"DELETED":  store.FlagDeleted,
	"DRAFT":    store.FlagDraft,
	"RECENT":   0,
}

// readFlag reads one flag: a system flag or a keyword (an atom).
func (d *Decoder) readFlag() (store.Flags, string, error) {
	bs, err := d.AcceptByte('\\')
	if err != nil {
		return 0, "", err
	}
	if bs {
		name, err := d.readKeyword("flag")
		if err != nil {
			return 0, "", err
		}
		f, ok := systemFlags[name]
		if !ok {
			return 0, "", syntaxErr("flag", "unknown system flag")
		}
		return f, "", nil
	}
	b, err := d.readWhile(&atomChars, "flag")
	if err != nil {
		return 0, "", err
	}
	return 0, string(b), nil
}

// readNumber64 reads 1*DIGIT as a number64 (0 to 2^63-1, RFC 9051 §9).
func (d *Decoder) readNumber64(elem string) (uint64, error) {
	var n uint64
	digits := 0
	for {
		c, err := d.peek()
		if err != nil {
			return 0, err
		}
		if c < '0' || c > '9' {
			if digits == 0 {
				return 0, syntaxErr(elem, "expected number, got %s", describe(c))
			}
			return n, nil
		}
		if n > (1<<63-1-uint64(c-'0'))/10 {
			return 0, syntaxErr(elem, "number out of range")
		}
		d.advance()
		digits++
		n = n*10 + uint64(c-'0')
	}
}

// ReadNumber reads a number: an unsigned 32-bit integer.
func (d *Decoder) ReadNumber() (uint32, error) { return d.readNumber32("number") }

func (d *Decoder) readNumber32(elem string) (uint32, error) {
	n, err := d.readNumber64(elem)
	if err != nil {
		return 0, err
	}
	if n > 1<<32-1 {
		return 0, syntaxErr(elem, "number out of range")
	}
	return uint32(n), nil
}

// ReadNZNumber reads a non-zero 32-bit number (leading zeros accepted).
func (d *Decoder) ReadNZNumber() (uint32, error) { return d.readNZNumber("nz-number") }

func (d *Decoder) readNZNumber(elem string) (uint32, error) {
	n, err := d.readNumber32(elem)
	if err == nil && n == 0 {
		err = syntaxErr(elem, "zero not allowed")
	}
	return n, err
}

// ReadNumber64 reads a number64: 0 to 2^63-1 (RFC 9051 §9), as used for
// sizes and mod-sequence values (RFC 7162 §7).
func (d *Decoder) ReadNumber64() (int64, error) {
	n, err := d.readNumber64("number64")
	return int64(n), err
}

// ReadNZNumber64 reads a non-zero number64 (mod-sequence-value).
func (d *Decoder) ReadNZNumber64() (int64, error) {
	n, err := d.readNumber64("nz-number64")
	if err == nil && n == 0 {
		err = syntaxErr("nz-number64", "zero not allowed")
	}
	return int64(n), err
}

// SeqRange is one element of a sequence set: Start:Stop, or a single number
// when Start == Stop. 0 stands for "*", the largest number in use. Either
// order is allowed (RFC 9051 §9: 4:2 is 2:4).
type SeqRange struct {
	Start, Stop uint32
}

// SeqSet is a sequence-set of message sequence numbers or UIDs.
type SeqSet struct {
	Ranges []SeqRange
	// Saved is set for "$", the result saved by SEARCH RETURN (SAVE)
	// (RFC 5182); Ranges is then empty.
	Saved bool
}

// ReadSeqSet reads a sequence-set: (seq-number / seq-range) *("," ...),
// with "*", or "$" (RFC 5182).
func (d *Decoder) ReadSeqSet() (SeqSet, error) {
	var s SeqSet
	dollar, err := d.AcceptByte('$')
	if err != nil || dollar {
		s.Saved = dollar
		return s, err
	}
	for {
		if err := d.charge(elemCost / 4); err != nil {
			return SeqSet{}, err
		}
		a, err := d.readSeqNumber()
		if err != nil {
			return SeqSet{}, err
		}
		r := SeqRange{a, a}
		colon, err := d.AcceptByte(':')
		if err != nil {
			return SeqSet{}, err
		}
		if colon {
			if r.Stop, err = d.readSeqNumber(); err != nil {
				return SeqSet{}, err
			}
		}
		s.Ranges = append(s.Ranges, r)
		comma, err := d.AcceptByte(',')
		if err != nil {
			return SeqSet{}, err
		}
		if !comma {
			return s, nil
		}
	}
}

// readSeqNumber reads an nz-number or "*" (returned as 0).
func (d *Decoder) readSeqNumber() (uint32, error) {
	star, err := d.AcceptByte('*')
	if err != nil || star {
		return 0, err
	}
	return d.readNZNumber("sequence-set")
}

// Dynamic reports whether s depends on the mailbox ("*" or "$").
func (s SeqSet) Dynamic() bool {
	if s.Saved {
		return true
	}
	for _, r := range s.Ranges {
		if r.Start == 0 || r.Stop == 0 {
			return true
		}
	}
	return false
}

// Contains reports whether n is in s, with "*" standing for largest. It is
// false for a "$" set, which the session resolves from its saved result.
func (s SeqSet) Contains(n, largest uint32) bool {
	for _, r := range s.Ranges {
		a, b := resolve(r, largest)
		if a <= n && n <= b {
			return true
		}
	}
	return false
}

func resolve(r SeqRange, largest uint32) (uint32, uint32) {
	a, b := r.Start, r.Stop
	if a == 0 {
		a = largest
	}
	if b == 0 {
		b = largest
	}
	if a > b {
		a, b = b, a
	}
	return a, b
}

// Resolve returns the ranges of s with "*" replaced by largest, ordered
// (Start <= Stop), sorted and merged. Numbers above largest are kept: for
// message sequence numbers they are an error the session reports (RFC 9051
// §9 seq-number), for UIDs they simply match nothing. With largest 0 (an
// empty mailbox) "*" matches nothing.
func (s SeqSet) Resolve(largest uint32) []SeqRange {
	out := make([]SeqRange, 0, len(s.Ranges))
	for _, r := range s.Ranges {
		a, b := resolve(r, largest)
		if a == 0 {
			a = 1
		}
		if b == 0 {
			continue
		}
		out = append(out, SeqRange{a, b})
	}
	slices.SortFunc(out, func(a, b SeqRange) int { return cmp.Compare(a.Start, b.Start) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && uint64(r.Start) <= uint64(merged[n-1].Stop)+1 {
			merged[n-1].Stop = max(merged[n-1].Stop, r.Stop)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// String returns s in wire form.
func (s SeqSet) String() string {
	if s.Saved {
		return "$"
	}
	var b []byte
	for i, r := range s.Ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSeqNumber(b, r.Start)
		if r.Stop != r.Start {
			b = append(b, ':')
			b = appendSeqNumber(b, r.Stop)
		}
	}
	return string(b)
}

func appendSeqNumber(b []byte, n uint32) []byte {
	if n == 0 {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(n), 10)
}

var months = [...]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// readDigits reads between min and max digits as an int.
func (d *Decoder) readDigits(elem string, min, max int) (int, error) {
	n, i := 0, 0
	for ; i < max; i++ {
		c, err := d.peek()
		if err != nil {
			return 0, err
		}
		if c < '0' || c > '9' {
			break
		}
		d.advance()
		n = n*10 + int(c-'0')
	}
	if i < min {
		return 0, syntaxErr(elem, "expected %d digits", min)
	}
	return n, nil
}

// readDateText reads date-day "-" date-month "-" date-year. A day may be
// one or two digits, or, in date-time, a space and one digit.
func (d *Decoder) readDateText(elem string, spaceDay bool) (y int, m time.Month, day int, err error) {
	if spaceDay {
		if _, err = d.AcceptSP(); err != nil {
			return
		}
	}
	if day, err = d.readDigits(elem, 1, 2); err != nil {
		return
	}
	if err = d.ExpectByte('-', elem); err != nil {
		return
	}
	var mb [3]byte
	for i := range mb {
		var c byte
		if c, err = d.peek(); err != nil {
			return
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			err = syntaxErr(elem, "invalid month")
			return
		}
		mb[i] = c
		d.advance()
	}
	for i, name := range months {
		if string(mb[:]) == name {
			m = time.Month(i + 1)
		}
	}
	if m == 0 {
		err = syntaxErr(elem, "invalid month")
		return
	}
	if err = d.ExpectByte('-', elem); err != nil {
		return
	}
	if y, err = d.readDigits(elem, 4, 4); err != nil {
		return
	}
	if day < 1 || day > daysIn(m, y) {
		err = syntaxErr(elem, "invalid day of month")
	}
	return
}

func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// ReadDate reads a search date (date-text, quoted or not). Only year, month
// and day count (RFC 9051 §6.4.4 "disregarding time and timezone"); the
// result is midnight UTC of that day.
func (d *Decoder) ReadDate() (time.Time, error) {
	q, err := d.AcceptByte('"')
	if err != nil {
		return time.Time{}, err
	}
	y, m, day, err := d.readDateText("date", false)
	if err != nil {
		return time.Time{}, err
	}
	if q {
		if err := d.ExpectByte('"', "date"); err != nil {
			return time.Time{}, err
		}
	}
	return time.Date(y, m, day, 0, 0, 0, 0, time.UTC), nil
}

// ReadDateTime reads a date-time: DQUOTE date-day-fixed "-" date-month "-"
// date-year SP time SP zone DQUOTE, e.g. "17-Jul-1996 02:44:25 -0700".
func (d *Decoder) ReadDateTime() (time.Time, error) {
	const elem = "date-time"
	if err := d.ExpectByte('"', elem); err != nil {
		return time.Time{}, err
	}
	y, m, day, err := d.readDateText(elem, true)
	if err != nil {
		return time.Time{}, err
	}
	var hms [3]int
	for i := range hms {
		sep := byte(':')
		if i == 0 {
			sep = ' '
		}
		if err := d.ExpectByte(sep, elem); err != nil {
			return time.Time{}, err
		}
		if hms[i], err = d.readDigits(elem, 2, 2); err != nil {
			return time.Time{}, err
		}
	}
	if hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
		return time.Time{}, syntaxErr(elem, "invalid time")
	}
	if err := d.SP(); err != nil {
		return time.Time{}, err
	}
	c, err := d.peek()
	if err != nil {
		return time.Time{}, err
	}
	if c != '+' && c != '-' {
		return time.Time{}, syntaxErr(elem, "invalid zone")
	}
	d.advance()
	z, err := d.readDigits(elem, 4, 4)
	if err != nil {
		return time.Time{}, err
	}
	if z%100 > 59 || z/100 > 23 {
		return time.Time{}, syntaxErr(elem, "invalid zone")
	}
	off := (z/100*60 + z%100) * 60
	if c == '-' {
		off = -off
	}
	if err := d.ExpectByte('"', elem); err != nil {
		return time.Time{}, err
	}
	if hms[2] == 60 {
		hms[2] = 59 // a leap second; time.Time cannot hold it
	}
	return time.Date(y, m, day, hms[0], hms[1], hms[2], 0, time.FixedZone("", off)), nil
}

// ReadMailbox reads a mailbox name (an astring) and returns it as UTF-8:
// "INBOX" in any case is INBOX (RFC 9051 §5.1), as is the INBOX prefix of
// its children ("inbox/x" is "INBOX/x"); outside UTF-8 mode the name is
// decoded from modified UTF-7 (RFC 3501 §5.1.3), accepting raw UTF-8 too
// since clients send it. Names with control characters, U+2028 or U+2029
// (RFC 9051 §5.1 MUST NOT) or that are not valid UTF-8 are refused.
func (d *Decoder) ReadMailbox() (string, error) {
	raw, err := d.ReadAString()
	if err != nil {
		return "", err
	}
	return d.mailboxName(raw, true)
}

// ReadReference reads the reference name of LIST and LSUB (an astring),
// decoded like ReadMailbox but without INBOX canonicalisation (see
// ListPattern).
func (d *Decoder) ReadReference() (string, error) {
	raw, err := d.ReadAString()
	if err != nil {
		return "", err
	}
	return d.mailboxName(raw, false)
}

func (d *Decoder) mailboxName(raw string, canonInbox bool) (string, error) {
	name := raw
	if !d.utf8 {
		var err error
		if name, err = decodeUTF7(raw, true); err != nil {
			return "", &MailboxNameError{Msg: "invalid modified UTF-7"}
		}
	} else if !utf8.ValidString(name) {
		return "", &MailboxNameError{Msg: "not UTF-8"}
	}
	for _, r := range name {
		if r < 0x20 || (0x7f <= r && r <= 0x9f) || r == 0x2028 || r == 0x2029 {
			return "", &MailboxNameError{Msg: "control character"}
		}
	}
	if canonInbox {
		name = canonicalInbox(name)
	}
	return name, nil
}

// canonicalInbox spells INBOX and the INBOX/ prefix in upper case.
func canonicalInbox(name string) string {
	if len(name) >= 5 && strings.EqualFold(name[:5], "INBOX") && (len(name) == 5 || name[5] == Delimiter) && name[:5] != "INBOX" {
		return "INBOX" + name[5:]
	}
	return name
}

// ReadListMailbox reads a LIST/LSUB pattern (list-mailbox: 1*list-char or a
// string, so "%" and "*" may appear unquoted), decoded like ReadMailbox but
// without INBOX canonicalisation (see ListPattern).
func (d *Decoder) ReadListMailbox() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	var raw string
	if c == '"' || c == '{' {
		raw, err = d.ReadString()
	} else {
		var b []byte
		b, err = d.readWhile(&listChars, "list-mailbox")
		raw = string(b)
	}
	if err != nil {
		return "", err
	}
	name, err := d.mailboxName(raw, false)
	var ne *MailboxNameError
	if errors.As(err, &ne) {
		// A pattern that is no valid name matches as sent: LIST answers
		// OK with what (if anything) has that name, never BAD.
		return raw, nil
	}
	return name, err
}

// LiteralReader streams the data of one accepted literal from the
// connection. It must be read to io.EOF (or Discard called, or the
// session's SkipLine) before the decoder reads on.
type LiteralReader struct {
	d         *Decoder
	Size      int64 // the announced size
	NonSync   bool  // {n+}
	Binary    bool  // literal8 ~{n} (RFC 3516)
	remaining int64
	nul       bool
}

// ReadLiteral reads a literal announcement ({n}, {n+} or ~{n}) and returns
// a reader for its data. A size over max is refused with
// *LiteralTooBigError before the continuation is sent (see that type for
// what the session does next); otherwise, for a synchronizing literal, the
// continuation callback is called.
func (d *Decoder) ReadLiteral(max int64) (*LiteralReader, error) {
	h, err := d.readLiteralHeader(max, true)
	if err != nil {
		return nil, err
	}
	l := &LiteralReader{d: d, Size: h.size, NonSync: h.nonSync, Binary: h.binary, remaining: h.size}
	d.lit = l
	return l, nil
}

// Read implements io.Reader; it returns io.EOF after Size bytes and
// io.ErrUnexpectedEOF if the connection ends first.
func (l *LiteralReader) Read(p []byte) (int, error) {
	if l.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.remaining {
		p = p[:l.remaining]
	}
	n, err := l.d.r.Read(p)
	l.remaining -= int64(n)
	if !l.Binary && !l.nul && bytes.IndexByte(p[:n], 0) >= 0 {
		l.nul = true
	}
	if l.remaining == 0 {
		l.d.lit = nil
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	return n, nil
}

// Remaining returns the bytes not yet read.
func (l *LiteralReader) Remaining() int64 { return l.remaining }

// HasNUL reports whether a NUL byte was read from a non-binary literal,
// which RFC 9051 §4.3 forbids (only literal8 may carry NUL): the session
// should refuse the APPEND once the data is read.
func (l *LiteralReader) HasNUL() bool { return l.nul }

// Discard reads and drops the rest of the literal's data.
func (l *LiteralReader) Discard() error {
	for l.remaining > 0 {
		n, err := l.d.r.Discard(int(min(l.remaining, 1<<20)))
		l.remaining -= int64(n)
		if err != nil {
			return l.d.readErr(err)
		}
	}
	l.d.lit = nil
	return nil
}

// SkipLine discards the rest of the current command after an error so that
// the next ReadTag starts at the next command. It is a no-op when the
// command already ended (its CRLF was consumed, or a refused synchronizing
// literal ended it). It discards the unread data of an accepted literal,
// and of a refused non-synchronizing literal, and follows non-synchronizing
// literals announced later on the line, since the client sends their data
// regardless; a line ending in a synchronizing literal ends the skip, since
// the client waits for a continuation that will not come (RFC 9051 §7.5).
// Beyond MaxDiscard bytes (accepted literal data excepted) it gives up with
// ErrCannotResync.
func (d *Decoder) SkipLine() error {
	if d.lit != nil {
		if err := d.lit.Discard(); err != nil {
			return err
		}
	}
	if d.idle {
		d.endCommand()
		return nil
	}
	budget := d.opt.MaxDiscard
	for {
		if d.discard > 0 {
			if d.discard > budget {
				return ErrCannotResync
			}
			budget -= d.discard
			n, err := d.r.Discard(int(d.discard))
			d.discard -= int64(n)
			if err != nil {
				return d.readErr(err)
			}
		}
		// Find the end of the line, keeping its last bytes to see whether
		// it announces a literal.
		var tail []byte
		for {
			chunk, err := d.r.ReadSlice('\n')
			budget -= int64(len(chunk))
			if budget < 0 {
				return ErrCannotResync
			}
			tail = appendTail(tail, chunk)
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return d.readErr(err)
			}
		}
		size, nonSync, ok := trailingLiteral(tail)
		if !ok || !nonSync {
			d.endCommand()
			return nil
		}
		d.discard = size
	}
}

// appendTail keeps the last 32 bytes of a line.
func appendTail(tail, chunk []byte) []byte {
	const keep = 32
	if len(chunk) >= keep {
		return append(tail[:0], chunk[len(chunk)-keep:]...)
	}
	tail = append(tail, chunk...)
	if len(tail) > keep {
		tail = append(tail[:0], tail[len(tail)-keep:]...)
	}
	return tail
}

// trailingLiteral parses a literal announcement at the end of a line
// ("{123}\r\n", "{123+}\n", "~{5}\r\n").
func trailingLiteral(line []byte) (size int64, nonSync, ok bool) {
	l := line
	if len(l) > 0 && l[len(l)-1] == '\n' {
		l = l[:len(l)-1]
	}
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false, false
	}
	l = l[:len(l)-1]
	if l[len(l)-1] == '+' {
		nonSync = true
		l = l[:len(l)-1]
	}
	open := -1
	for i := len(l) - 1; i >= 0; i-- {
		if l[i] == '{' {
			open = i
			break
		}
		if l[i] < '0' || l[i] > '9' {
			return 0, false, false
		}
	}
	if open < 0 || open == len(l)-1 {
		return 0, false, false
	}
	n, err := strconv.ParseInt(string(l[open+1:]), 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, nonSync, true
}

// readRawLine reads one whole line (for AUTHENTICATE responses and IDLE's
// DONE), without its CRLF. A line over MaxLineLength is consumed and
// reported as *LimitError; one over MaxDiscard more gives ErrCannotResync.
func (d *Decoder) readRawLine() ([]byte, error) {
	if d.lit != nil && d.lit.remaining > 0 {
		return nil, errLiteralPending
	}
	d.buf = d.buf[:0]
	tooLong := false
	var total int64
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(chunk) > 0 {
			d.idle = false
		}
		if total += int64(len(chunk)); total > int64(d.opt.MaxLineLength)+d.opt.MaxDiscard {
			return nil, ErrCannotResync
		}
		if !tooLong {
			d.buf = append(d.buf, chunk...)
			if len(d.buf) > d.opt.MaxLineLength+2 {
				tooLong = true
				d.buf = d.buf[:0]
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, d.readErr(err)
		}
	}
	d.endCommand()
	if tooLong {
		return nil, &LimitError{What: "line", Limit: int64(d.opt.MaxLineLength)}
	}
	line := d.buf[:len(d.buf)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ReadSASLResponse reads one client response line of an AUTHENTICATE
// exchange (RFC 9051 §6.2.2): base64, possibly empty. "*" cancels and
// returns ErrAuthCanceled.
func (d *Decoder) ReadSASLResponse() ([]byte, error) {
	line, err := d.readRawLine()
	if err != nil {
		return nil, err
	}
	if string(line) == "*" {
		return nil, ErrAuthCanceled
	}
	return decodeBase64("SASL response", line)
}

func decodeBase64(elem string, b []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		return nil, syntaxErr(elem, "invalid base64")
	}
	return out[:n], nil
}

// ReadIdleDone reads the line that ends IDLE; it must be "DONE" in any case
// (RFC 2177 §3). Anything else is a *SyntaxError, the line consumed.
func (d *Decoder) ReadIdleDone() error {
	line, err := d.readRawLine()
	if err != nil {
		return err
	}
	if !strings.EqualFold(string(line), "DONE") {
		return syntaxErr("IDLE", "expected DONE")
	}
	return nil
}
