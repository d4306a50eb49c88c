package imapwire

// FETCH arguments: RFC 9051 §6.4.5 and §9 (fetch-att, section, partial),
// RFC 3501 §6.4.5 (RFC822.*), RFC 3516 (BINARY), RFC 7162 (MODSEQ,
// CHANGEDSINCE, VANISHED), RFC 8474 (EMAILID, THREADID), RFC 8970 (PREVIEW)
// and RFC 8514 (SAVEDATE).

import (
	"strconv"
	"strings"
)

// FetchAtt is one kind of FETCH data item.
type FetchAtt uint8

// The FETCH data items. The macros ALL, FAST and FULL are expanded.
const (
	FetchFlags         FetchAtt = iota + 1
	FetchUID                    // UID
	FetchInternalDate           // INTERNALDATE
	FetchRFC822Size             // RFC822.SIZE
	FetchRFC822                 // RFC822: BODY[] answered as RFC822, sets \Seen
	FetchRFC822Header           // RFC822.HEADER: BODY.PEEK[HEADER] answered as RFC822.HEADER
	FetchRFC822Text             // RFC822.TEXT: BODY[TEXT] answered as RFC822.TEXT, sets \Seen
	FetchEnvelope               // ENVELOPE
	FetchBodyStructure          // BODYSTRUCTURE
	FetchBody                   // BODY without a section: the non-extensible BODYSTRUCTURE
	FetchBodySection            // BODY[section]<partial> and BODY.PEEK[...]
	FetchBinary                 // BINARY[part]<partial> and BINARY.PEEK[...] (RFC 3516)
	FetchBinarySize             // BINARY.SIZE[part] (RFC 3516)
	FetchModSeq                 // MODSEQ (RFC 7162)
	FetchEmailID                // EMAILID (RFC 8474)
	FetchThreadID               // THREADID (RFC 8474)
	FetchPreview                // PREVIEW (RFC 8970)
	FetchSaveDate               // SAVEDATE (RFC 8514)
)

// SectionSpec is the text part of a section specification.
type SectionSpec uint8

// The section-text values; SectionAll is the empty section (BODY[], BODY[1]).
const (
	SectionAll SectionSpec = iota
	SectionHeader
	SectionHeaderFields
	SectionHeaderFieldsNot
	SectionText
	SectionMIME
)

var sectionSpecNames = [...]string{"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"}

// Section is a body section: a part path (empty for the whole message) and
// a spec. For BINARY only Part is used.
type Section struct {
	Part   []uint32 // 1.2.3 -> {1, 2, 3}
	Spec   SectionSpec
	Fields []string // the header-list of HEADER.FIELDS (.NOT), as sent
}

// Partial is the <offset.count> of a section fetch.
type Partial struct {
	Offset, Count int64
}

// FetchItem is one requested data item.
type FetchItem struct {
	Att     FetchAtt
	Peek    bool     // BODY.PEEK / BINARY.PEEK
	Section Section  // FetchBodySection, FetchBinary, FetchBinarySize
	Partial *Partial // FetchBodySection, FetchBinary; nil for the whole
	Lazy    bool     // PREVIEW (LAZY)
}

// SetsSeen reports whether fetching it sets \Seen on a read-write mailbox
// (RFC 9051 §6.4.5: BODY[...] without .PEEK, BINARY[...] likewise; RFC
// 3501: RFC822 and RFC822.TEXT).
func (it FetchItem) SetsSeen() bool {
	switch it.Att {
	case FetchRFC822, FetchRFC822Text:
		return true
	case FetchBodySection, FetchBinary:
		return !it.Peek
	}
	return false
}

// String returns the item's name as it appears in the FETCH response
// (RFC 9051 §7.5.2): .PEEK is dropped, a partial becomes its origin
// ("BODY[1.TEXT]<0>"), header field names are echoed.
func (it FetchItem) String() string {
	switch it.Att {
	case FetchBodySection:
		s := "BODY[" + it.Section.String() + "]"
		if it.Partial != nil {
			s += "<" + strconv.FormatInt(it.Partial.Offset, 10) + ">"
		}
		return s
	case FetchBinary:
		s := "BINARY[" + it.Section.String() + "]"
		if it.Partial != nil {
			s += "<" + strconv.FormatInt(it.Partial.Offset, 10) + ">"
		}
		return s
	case FetchBinarySize:
		return "BINARY.SIZE[" + it.Section.String() + "]"
	}
	if int(it.Att) < len(fetchAttNames) {
		return fetchAttNames[it.Att]
	}
	return "?"
}

var fetchAttNames = [...]string{
	FetchFlags:         "FLAGS",
	FetchUID:           "UID",
	FetchInternalDate:  "INTERNALDATE",
	FetchRFC822Size:    "RFC822.SIZE",
	FetchRFC822:        "RFC822",
	FetchRFC822Header:  "RFC822.HEADER",
	FetchRFC822Text:    "RFC822.TEXT",
	FetchEnvelope:      "ENVELOPE",
	FetchBodyStructure: "BODYSTRUCTURE",
	FetchBody:          "BODY",
	FetchModSeq:        "MODSEQ",
	FetchEmailID:       "EMAILID",
	FetchThreadID:      "THREADID",
	FetchPreview:       "PREVIEW",
	FetchSaveDate:      "SAVEDATE",
}

// String returns the section spec in wire form, without brackets:
// "1.2.HEADER.FIELDS (From Subject)".
func (s Section) String() string {
	var b []byte
	for i, p := range s.Part {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(p), 10)
	}
	if s.Spec != SectionAll {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, sectionSpecNames[s.Spec]...)
	}
	if s.Spec == SectionHeaderFields || s.Spec == SectionHeaderFieldsNot {
		b = append(b, " ("...)
		for i, f := range s.Fields {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendAString(b, f, true)
		}
		b = append(b, ')')
	}
	return string(b)
}

// FetchCommand is a parsed FETCH (or UID FETCH).
type FetchCommand struct {
	Seq   SeqSet
	Items []FetchItem

	// ChangedSince is the CHANGEDSINCE modifier (RFC 7162 §3.1.4), valid
	// when HasChangedSince; it implies MODSEQ in every response.
	ChangedSince    int64
	HasChangedSince bool

	// Vanished is the VANISHED modifier (RFC 7162 §3.2.6), valid only with
	// UID FETCH and CHANGEDSINCE, which the session checks.
	Vanished bool
}

// Has reports whether an item of kind att was requested.
func (c *FetchCommand) Has(att FetchAtt) bool {
	for _, it := range c.Items {
		if it.Att == att {
			return true
		}
	}
	return false
}

// ParseFetch parses the arguments of FETCH, from the SP after the command
// name through the final CRLF:
//
//	SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
//	"(" fetch-att *(SP fetch-att) ")") [SP "(" fetch-modifier *(SP ...) ")"]
func (d *Decoder) ParseFetch() (*FetchCommand, error) {
	var c FetchCommand
	var err error
	if err = d.SP(); err != nil {
		return nil, err
	}
	if c.Seq, err = d.ReadSeqSet(); err != nil {
		return nil, err
	}
	if err = d.SP(); err != nil {
		return nil, err
	}
	ch, err := d.peek()
	if err != nil {
		return nil, err
	}
	if ch == '(' {
		err = d.ReadList(func() error {
			it, err := d.readFetchAtt(false)
			c.Items = append(c.Items, it...)
			return err
		})
		if err == nil && len(c.Items) == 0 {
			err = syntaxErr("fetch-att", "empty list")
		}
	} else {
		c.Items, err = d.readFetchAtt(true)
	}
	if err != nil {
		return nil, err
	}
	sp, err := d.AcceptSP()
	if err != nil {
		return nil, err
	}
	if sp {
		err = d.ReadList(func() error {
			name, err := d.readKeyword("fetch-modifier")
			if err != nil {
				return err
			}
			switch name {
			case "CHANGEDSINCE":
				if err := d.SP(); err != nil {
					return err
				}
				c.ChangedSince, err = d.ReadNumber64()
				c.HasChangedSince = true
				return err
			case "VANISHED":
				c.Vanished = true
				return nil
			}
			return syntaxErr("fetch-modifier", "unknown modifier")
		})
		if err != nil {
			return nil, err
		}
	}
	if err := d.ExpectCRLF(); err != nil {
		return nil, err
	}
	return &c, nil
}

// readFetchAtt reads one fetch-att; with macros, also ALL, FAST or FULL,
// which are not allowed inside a list.
func (d *Decoder) readFetchAtt(macros bool) ([]FetchItem, error) {
	const elem = "fetch-att"
	b, err := d.readWhile(&fetchNameChars, elem)
	if err != nil {
		return nil, err
	}
	name := upperASCII(b)
	one := func(a FetchAtt) ([]FetchItem, error) { return []FetchItem{{Att: a}}, nil }
	switch name {
	case "ALL", "FAST", "FULL":
		if !macros {
			return nil, syntaxErr(elem, "macro %s inside a list", name)
		}
		items := []FetchItem{{Att: FetchFlags}, {Att: FetchInternalDate}, {Att: FetchRFC822Size}}
		if name != "FAST" {
			items = append(items, FetchItem{Att: FetchEnvelope})
		}
		if name == "FULL" {
			items = append(items, FetchItem{Att: FetchBody})
		}
		return items, nil
	case "FLAGS":
		return one(FetchFlags)
	case "UID":
		return one(FetchUID)
	case "INTERNALDATE":
		return one(FetchInternalDate)
	case "RFC822.SIZE":
		return one(FetchRFC822Size)
	case "RFC822":
		return one(FetchRFC822)
	case "RFC822.HEADER":
		return one(FetchRFC822Header)
	case "RFC822.TEXT":
		return one(FetchRFC822Text)
	case "ENVELOPE":
		return one(FetchEnvelope)
	case "BODYSTRUCTURE":
		return one(FetchBodyStructure)
	case "MODSEQ":
		return one(FetchModSeq)
	case "EMAILID":
		return one(FetchEmailID)
	case "THREADID":
		return one(FetchThreadID)
	case "SAVEDATE":
		return one(FetchSaveDate)
	case "PREVIEW":
		return d.readPreview()
	case "BODY", "BODY.PEEK":
		it := FetchItem{Att: FetchBodySection, Peek: name == "BODY.PEEK"}
		c, err := d.peek()
		if err != nil {
			return nil, err
		}
		if c != '[' {
			if it.Peek {
				return nil, syntaxErr(elem, "BODY.PEEK needs a section")
			}
			return one(FetchBody)
		}
		if it.Section, err = d.readSection(); err != nil {
			return nil, err
		}
		if it.Partial, err = d.readPartial(); err != nil {
			return nil, err
		}
		return []FetchItem{it}, nil
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		it := FetchItem{Att: FetchBinary, Peek: name == "BINARY.PEEK"}
		if name == "BINARY.SIZE" {
			it.Att = FetchBinarySize
		}
		if it.Section.Part, err = d.readSectionBinary(); err != nil {
			return nil, err
		}
		if it.Att == FetchBinary {
			if it.Partial, err = d.readPartial(); err != nil {
				return nil, err
			}
		}
		return []FetchItem{it}, nil
	}
	return nil, syntaxErr(elem, "unknown data item")
}

// fetchNameChars are the characters of fetch-att names: letters, digits
// and ".", stopping before "[", "<", SP and ")".
var fetchNameChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	t['.'] = true
	return t
}()

// readPreview reads the optional modifier list after PREVIEW (RFC 8970 §3):
// SP "(" preview-mod *(SP preview-mod) ")". The SP is only consumed when a
// "(" follows, since SP also separates list items.
func (d *Decoder) readPreview() ([]FetchItem, error) {
	it := FetchItem{Att: FetchPreview}
	if c, err := d.peek(); err != nil || c != ' ' {
		return []FetchItem{it}, err
	}
	if b, err := d.r.Peek(2); err == nil && b[1] == '(' {
		d.advance()
		err := d.ReadList(func() error {
			m, err := d.readKeyword("preview-mod")
			if err != nil {
				return err
			}
			if m != "LAZY" {
				return syntaxErr("preview-mod", "unknown modifier")
			}
			it.Lazy = true
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return []FetchItem{it}, nil
}

// readSection reads section = "[" [section-spec] "]".
func (d *Decoder) readSection() (Section, error) {
	const elem = "section"
	var s Section
	if err := d.ExpectByte('[', elem); err != nil {
		return s, err
	}
	for {
		c, err := d.peek()
		if err != nil {
			return s, err
		}
		if c < '0' || c > '9' {
			break
		}
		n, err := d.readNZNumber(elem)
		if err != nil {
			return s, err
		}
		if err := d.charge(4); err != nil {
			return s, err
		}
		s.Part = append(s.Part, n)
		dot, err := d.AcceptByte('.')
		if err != nil {
			return s, err
		}
		if !dot {
			break
		}
		if c, err = d.peek(); err != nil {
			return s, err
		}
		if c < '0' || c > '9' {
			if err := d.readSectionText(&s); err != nil {
				return s, err
			}
			break
		}
	}
	if len(s.Part) == 0 {
		c, err := d.peek()
		if err != nil {
			return s, err
		}
		if c != ']' {
			if err := d.readSectionText(&s); err != nil {
				return s, err
			}
		}
	}
	return s, d.ExpectByte(']', elem)
}

// readSectionText reads section-msgtext or (after a part number) MIME.
func (d *Decoder) readSectionText(s *Section) error {
	const elem = "section"
	b, err := d.readWhile(&fetchNameChars, elem)
	if err != nil {
		return err
	}
	switch upperASCII(b) {
	case "HEADER":
		s.Spec = SectionHeader
	case "TEXT":
		s.Spec = SectionText
	case "MIME":
		if len(s.Part) == 0 {
			return syntaxErr(elem, "MIME needs a part number")
		}
		s.Spec = SectionMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		s.Spec = SectionHeaderFields
		if len(b) > len("HEADER.FIELDS") {
			s.Spec = SectionHeaderFieldsNot
		}
		if err := d.SP(); err != nil {
			return err
		}
		err := d.ReadList(func() error {
			f, err := d.ReadAString()
			s.Fields = append(s.Fields, f)
			return err
		})
		if err != nil {
			return err
		}
		if len(s.Fields) == 0 {
			return syntaxErr(elem, "empty header-list")
		}
	default:
		return syntaxErr(elem, "unknown section")
	}
	return nil
}

// readSectionBinary reads section-binary = "[" [section-part] "]".
func (d *Decoder) readSectionBinary() ([]uint32, error) {
	const elem = "section-binary"
	if err := d.ExpectByte('[', elem); err != nil {
		return nil, err
	}
	var part []uint32
	if ok, err := d.AcceptByte(']'); ok || err != nil {
		return nil, err
	}
	for {
		n, err := d.readNZNumber(elem)
		if err != nil {
			return nil, err
		}
		if err := d.charge(4); err != nil {
			return nil, err
		}
		part = append(part, n)
		dot, err := d.AcceptByte('.')
		if err != nil {
			return nil, err
		}
		if !dot {
			return part, d.ExpectByte(']', elem)
		}
	}
}

// readPartial reads an optional partial = "<" number64 "." nz-number64 ">".
func (d *Decoder) readPartial() (*Partial, error) {
	const elem = "partial"
	lt, err := d.AcceptByte('<')
	if err != nil || !lt {
		return nil, err
	}
	var p Partial
	if p.Offset, err = d.ReadNumber64(); err != nil {
		return nil, err
	}
	if err := d.ExpectByte('.', elem); err != nil {
		return nil, err
	}
	if p.Count, err = d.ReadNZNumber64(); err != nil {
		return nil, err
	}
	return &p, d.ExpectByte('>', elem)
}

// isAtom reports whether s can be sent as an atom.
func isAtom(s string, class *[256]bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !class[s[i]] {
			return false
		}
	}
	return true
}

// appendAString appends s as an astring: an atom when it is one (and not
// NIL, which a careless client would read as nil), else quoted, or a
// literal when quoting cannot carry it.
func appendAString(b []byte, s string, utf8OK bool) []byte {
	if isAtom(s, &astringChars) && !strings.EqualFold(s, "NIL") {
		return append(b, s...)
	}
	return appendString(b, s, utf8OK)
}
