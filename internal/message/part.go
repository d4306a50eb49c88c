// Package message owns jodmai's reading of RFC 5322 / MIME messages: one
// streaming pass over a stored message yields its MIME tree with exact byte
// offsets (what IMAP BODYSTRUCTURE and BODY[section] need), the IMAP ENVELOPE
// of the message and of every embedded message/rfc822, and a writer that puts
// messages into the CRLF form the store keeps.
//
// Invariants:
//   - Parse never holds a message body in memory: it reads line by line through a
//     fixed buffer and keeps only the header fields it interprets, within the
//     caps below (MaxHeaderBytes, MaxDepth, MaxParts).
//   - Parse never fails on malformed content; it only fails when the reader
//     does. Malformed MIME becomes a best-effort tree, with RFC 2045 defaults
//     (text/plain; charset=us-ascii, 7BIT) for what cannot be understood.
//   - Every offset is an index into the whole message as read, so a caller can
//     serve any section by reading the stored body file at those offsets.
//   - Header values are kept raw (unfolded, not RFC 2047 decoded), as IMAP sends
//     them; DecodeHeader decodes for display and search.
//
// This package does no I/O of its own beyond the reader and writer it is given.
//
// Beside it: package message/mimetext turns MIME parts and header words into
// plain UTF-8 text (transfer encodings, charsets, HTML, previews), and
// package message/thread groups messages by RFC 5256 base subject and
// references.
package message

// Limits applied by Parse so that hostile messages cost bounded memory and
// time. A message beyond them still parses: the excess is treated as opaque.
const (
	// MaxHeaderBytes is how much of one header block (one part's header) is
	// interpreted. Fields that start beyond it are ignored, though the header
	// block still extends to the blank line that ends it.
	MaxHeaderBytes = 256 << 10

	// MaxDepth is the deepest nesting of multipart and message/rfc822
	// containers that is parsed; deeper containers are opaque leaves.
	MaxDepth = 32

	// MaxParts is the most Parts one message yields (the root and every
	// embedded message root included). Further body parts are not listed;
	// their bytes stay inside their parent's range.
	MaxParts = 10000

	// maxRetainedHeaderBytes bounds the header values kept across all parts
	// of one message, so 10,000 parts of 256 KiB headers cannot add up.
	maxRetainedHeaderBytes = 4 << 20

	// readBufferSize is the line buffer. Lines longer than this are handled
	// in pieces; a multipart delimiter line is only recognised if it fits.
	readBufferSize = 16 << 10
)

// Part is one node of a message's MIME tree: the whole message, a body part of
// a multipart, or the message inside a message/rfc822 part. It is stored as
// JSON next to the message, hence the short tags.
//
// Offsets are into the whole outer message. [HeaderStart, BodyStart) is the
// header including the blank line that ends it (IMAP BODY[HEADER] and
// BODY[n.MIME]); [BodyStart, End) is the body (IMAP BODY[TEXT] and BODY[n]).
// Per RFC 2046 §5.1.1 the line break before a multipart delimiter belongs to
// the delimiter, so End excludes it. A header that is not ended by a blank
// line (message truncated in its header, or a delimiter straight after the
// header) has BodyStart == End.
type Part struct {
	HeaderStart int64 `json:"h"`
	BodyStart   int64 `json:"b"`
	End         int64 `json:"e"`

	// Lines is the number of lines in the body: the count of LF bytes in
	// [BodyStart, End), plus one if the body is non-empty and does not end in
	// LF. IMAP BODYSTRUCTURE reports it for text/* and message/rfc822.
	Lines int64 `json:"n,omitempty"`

	// MediaType and MediaSubtype are lowercase. Absent or unparsable
	// Content-Type, and multipart without a boundary, give text/plain (with
	// Params charset=us-ascii, RFC 2045 §5.2), or message/rfc822 for a body
	// part of a multipart/digest (RFC 2046 §5.1.5).
	MediaType    string `json:"t"`
	MediaSubtype string `json:"s"`

	// Params are the Content-Type parameters in header order. Keys are
	// lowercase. RFC 2231 continuations are joined and extended values
	// percent-decoded under the base key (name*0*=... becomes name); values in
	// a known charset (utf-8, us-ascii, iso-8859-1, windows-1252) are
	// converted to UTF-8, others kept as decoded bytes. Otherwise values are
	// raw (quotes removed, RFC 2047 words left alone). The first of duplicate
	// keys wins.
	Params []Param `json:"p,omitempty"`

	// ID, Description, Location and MD5 are the raw unfolded values of
	// Content-ID, Content-Description, Content-Location and Content-MD5.
	ID          string `json:"id,omitempty"`
	Description string `json:"d,omitempty"`
	Location    string `json:"lo,omitempty"`
	MD5         string `json:"m5,omitempty"`

	// Encoding is the Content-Transfer-Encoding token in uppercase ("BASE64"),
	// "7BIT" when absent (RFC 2045 §6.1), so it is never empty.
	Encoding string `json:"c"`

	// Disposition is the lowercase Content-Disposition type ("attachment"),
	// empty when absent; DispositionParams are its parameters, decoded like
	// Params.
	Disposition       string  `json:"di,omitempty"`
	DispositionParams []Param `json:"dp,omitempty"`

	// Language holds the Content-Language tags, as sent.
	Language []string `json:"la,omitempty"`

	// Parts are the body parts of a multipart, in order. A multipart may have
	// none: no delimiter was found, or MaxDepth/MaxParts made it opaque. RFC
	// 9051 BODYSTRUCTURE needs at least one; write an empty text/plain part
	// for it, as Dovecot does.
	Parts []*Part `json:"ps,omitempty"`

	// Message is the root of the message inside a message/rfc822 or
	// message/global part; its HeaderStart is this part's BodyStart. It is nil
	// when the embedded message could not be parsed in place: a
	// Content-Transfer-Encoding other than 7BIT, 8BIT or BINARY, or the
	// MaxDepth/MaxParts caps.
	Message *Part `json:"m,omitempty"`

	// Envelope is set on the root Part and on every Message: it is the IMAP
	// ENVELOPE of that message.
	Envelope *Envelope `json:"env,omitempty"`
}

// Param is one MIME parameter (RFC 2045 §5.1).
type Param struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// Param returns the value of the Content-Type parameter key (lowercase), or
// "" if absent.
func (p *Part) Param(key string) string {
	return lookupParam(p.Params, key)
}

// IsMultipart reports whether the part is a multipart container.
func (p *Part) IsMultipart() bool { return p.MediaType == "multipart" }

// Walk calls fn for p and every part below it (body parts and embedded
// messages), depth first in document order, stopping when fn returns false.
func (p *Part) Walk(fn func(*Part) bool) bool {
	if !fn(p) {
		return false
	}
	for _, c := range p.Parts {
		if !c.Walk(fn) {
			return false
		}
	}
	if p.Message != nil {
		return p.Message.Walk(fn)
	}
	return true
}

func lookupParam(ps []Param, key string) string {
	for _, kv := range ps {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// Envelope is the IMAP ENVELOPE of a message (RFC 9051 §7.5.2, RFC 3501
// §7.4.2). Strings are raw header values, unfolded and trimmed but not
// decoded, because IMAP sends them as they appear in the header; "" means the
// field is absent or empty (IMAP NIL). Only the first occurrence of a field
// counts. Sender and ReplyTo hold a copy of From when their header is absent
// or holds no address, as RFC 9051 §7.5.2 requires.
type Envelope struct {
	Date      string    `json:"date,omitempty"`
	Subject   string    `json:"subj,omitempty"`
	From      []Address `json:"from,omitempty"`
	Sender    []Address `json:"sndr,omitempty"`
	ReplyTo   []Address `json:"rpto,omitempty"`
	To        []Address `json:"to,omitempty"`
	Cc        []Address `json:"cc,omitempty"`
	Bcc       []Address `json:"bcc,omitempty"`
	InReplyTo string    `json:"irt,omitempty"`
	MessageID string    `json:"mid,omitempty"`
}

// Address is one entry of an IMAP ENVELOPE address list, in the RFC 9051
// §7.5.2 shape (addr-name, addr-adl, addr-mailbox, addr-host). Strings are
// raw: quoted strings are unquoted, RFC 2047 encoded words are left as they
// are (see DecodedName).
//
// Group syntax is represented the IMAP way:
//   - group start: Mailbox is the group name, Host is "" (IsGroupStart);
//   - group end: Mailbox and Host are both "" (IsGroupEnd).
//
// So that Host == "" always means group syntax, an ordinary address never has
// an empty Mailbox or Host: a missing local part is "MISSING_MAILBOX" and a
// missing domain "MISSING_DOMAIN" (what Dovecot sends). Name and Adl may be
// empty (IMAP NIL).
type Address struct {
	Name    string `json:"n,omitempty"`
	Adl     string `json:"a,omitempty"`
	Mailbox string `json:"m,omitempty"`
	Host    string `json:"h,omitempty"`
}

// Placeholders for the parts of an address that were not in the header.
const (
	MissingMailbox = "MISSING_MAILBOX"
	MissingDomain  = "MISSING_DOMAIN"
)

// IsGroupStart reports whether a marks the start of a group; a.Mailbox is
// then the group's name.
func (a Address) IsGroupStart() bool { return a.Host == "" && a.Mailbox != "" }

// IsGroupEnd reports whether a marks the end of a group.
func (a Address) IsGroupEnd() bool { return a.Host == "" && a.Mailbox == "" }

// DecodedName returns the display name with RFC 2047 encoded words decoded,
// for display and search (not for ENVELOPE).
func (a Address) DecodedName() string { return DecodeHeader(a.Name) }
