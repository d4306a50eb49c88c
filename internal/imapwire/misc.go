package imapwire

// Arguments of STORE, LIST, STATUS, SELECT/EXAMINE, APPEND, ENABLE, ID,
// AUTHENTICATE, COMPRESS and CREATE: RFC 9051 §6 and §9, RFC 7162
// (CONDSTORE/QRESYNC), RFC 5258/5819/6154 (LIST-EXTENDED, LIST-STATUS,
// SPECIAL-USE), RFC 3502 (MULTIAPPEND), RFC 3516 (BINARY), RFC 6855 (UTF8
// APPEND), RFC 5161 (ENABLE), RFC 2971 (ID), RFC 4959 (SASL-IR), RFC 4978
// (COMPRESS), RFC 7889 (APPENDLIMIT), RFC 8474 (MAILBOXID).
//
// Each Parse* function starts at the SP after the command name and
// consumes the command through its final CRLF, except APPEND, which is read
// in steps so its literals can stream (ParseAppendMailbox,
// ReadAppendMessage, AppendDone).

import (
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/store"
)

// Delimiter is jodmai's mailbox hierarchy delimiter.
const Delimiter = '/'

// StoreCommand is a parsed STORE (or UID STORE).
type StoreCommand struct {
	Seq      SeqSet
	Op       store.FlagOp // FlagsReplace (FLAGS), FlagsAdd (+FLAGS), FlagsRemove (-FLAGS)
	Silent   bool         // .SILENT
	Flags    store.Flags
	Keywords []string

	// UnchangedSince is the UNCHANGEDSINCE modifier (RFC 7162 §3.1.3),
	// valid when HasUnchangedSince; 0 is a valid value (it fails for every
	// message).
	UnchangedSince    int64
	HasUnchangedSince bool
}

// ParseStore parses the arguments of STORE:
//
//	SP sequence-set [SP "(" store-modifier *(SP store-modifier) ")"]
//	SP ["+" / "-"] "FLAGS" [".SILENT"] SP (flag-list / (flag *(SP flag)))
func (d *Decoder) ParseStore() (*StoreCommand, error) {
	const elem = "store-att-flags"
	var c StoreCommand
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
		err := d.ReadList(func() error {
			name, err := d.readKeyword("store-modifier")
			if err != nil {
				return err
			}
			if name != "UNCHANGEDSINCE" {
				return syntaxErr("store-modifier", "unknown modifier")
			}
			if err := d.SP(); err != nil {
				return err
			}
			c.UnchangedSince, err = d.ReadNumber64()
			c.HasUnchangedSince = true
			return err
		})
		if err != nil {
			return nil, err
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		if ch, err = d.peek(); err != nil {
			return nil, err
		}
	}
	switch ch {
	case '+':
		c.Op = store.FlagsAdd
		d.advance()
	case '-':
		c.Op = store.FlagsRemove
		d.advance()
	default:
		c.Op = store.FlagsReplace
	}
	b, err := d.readWhile(&fetchNameChars, elem)
	if err != nil {
		return nil, err
	}
	switch upperASCII(b) {
	case "FLAGS":
	case "FLAGS.SILENT":
		c.Silent = true
	default:
		return nil, syntaxErr(elem, "expected FLAGS or FLAGS.SILENT")
	}
	if err := d.SP(); err != nil {
		return nil, err
	}
	if ch, err = d.peek(); err != nil {
		return nil, err
	}
	if ch == '(' {
		if c.Flags, c.Keywords, err = d.ReadFlagList(); err != nil {
			return nil, err
		}
	} else {
		for {
			if err := d.charge(elemCost); err != nil {
				return nil, err
			}
			f, kw, err := d.readFlag()
			if err != nil {
				return nil, err
			}
			c.Flags |= f
			if kw != "" {
				c.Keywords = append(c.Keywords, kw)
			}
			sp, err := d.AcceptSP()
			if err != nil {
				return nil, err
			}
			if !sp {
				break
			}
		}
	}
	if err := d.ExpectCRLF(); err != nil {
		return nil, err
	}
	return &c, nil
}

// StatusItem is a STATUS data item.
type StatusItem uint8

// The STATUS items jodmai offers.
const (
	StatusMessages      StatusItem = iota + 1
	StatusUIDNext                  // UIDNEXT
	StatusUIDValidity              // UIDVALIDITY
	StatusUnseen                   // UNSEEN
	StatusDeleted                  // DELETED (RFC 9051)
	StatusSize                     // SIZE (RFC 8438, STATUS=SIZE)
	StatusRecent                   // RECENT (IMAP4rev1)
	StatusHighestModSeq            // HIGHESTMODSEQ (RFC 7162)
	StatusAppendLimit              // APPENDLIMIT (RFC 7889)
	StatusMailboxID                // MAILBOXID (RFC 8474)
)

// StatusDeletedStorage is DELETED-STORAGE (RFC 9208 §4.2.2), which
// QUOTA=RES-STORAGE requires.
const StatusDeletedStorage = StatusMailboxID + 1

var statusItemNames = [...]string{
	StatusMessages: "MESSAGES", StatusUIDNext: "UIDNEXT", StatusUIDValidity: "UIDVALIDITY",
	StatusUnseen: "UNSEEN", StatusDeleted: "DELETED", StatusSize: "SIZE", StatusRecent: "RECENT",
	StatusHighestModSeq: "HIGHESTMODSEQ", StatusAppendLimit: "APPENDLIMIT", StatusMailboxID: "MAILBOXID",
	StatusDeletedStorage: "DELETED-STORAGE",
}

// String returns the item's wire name.
func (s StatusItem) String() string {
	if int(s) < len(statusItemNames) {
		return statusItemNames[s]
	}
	return "?"
}

// readStatusAtts reads "(" status-att *(SP status-att) ")", without
// duplicates, in request order.
func (d *Decoder) readStatusAtts() ([]StatusItem, error) {
	var items []StatusItem
	err := d.ReadList(func() error {
		name, err := d.readKeyword("status-att")
		if err != nil {
			return err
		}
		for i, n := range statusItemNames {
			if n != "" && n == name {
				for _, have := range items {
					if have == StatusItem(i) {
						return nil
					}
				}
				items = append(items, StatusItem(i))
				return nil
			}
		}
		return syntaxErr("status-att", "unknown status item")
	})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, syntaxErr("status-att", "empty list")
	}
	return items, nil
}

// StatusCommand is a parsed STATUS.
type StatusCommand struct {
	Mailbox string
	Items   []StatusItem
}

// ParseStatus parses the arguments of STATUS:
//
//	SP mailbox SP "(" status-att *(SP status-att) ")"
func (d *Decoder) ParseStatus() (*StatusCommand, error) {
	var c StatusCommand
	var err error
	if c.Mailbox, err = d.SPMailbox(); err != nil {
		return nil, err
	}
	if err := d.SP(); err != nil {
		return nil, err
	}
	if c.Items, err = d.readStatusAtts(); err != nil {
		return nil, err
	}
	if err := d.ExpectCRLF(); err != nil {
		return nil, err
	}
	return &c, nil
}

// SPMailbox reads "SP mailbox": the mailbox argument of a command (see
// ReadMailbox).
func (d *Decoder) SPMailbox() (string, error) {
	if err := d.SP(); err != nil {
		return "", err
	}
	return d.ReadMailbox()
}

// ListSelect is a set of LIST selection options (RFC 5258 §3, RFC 6154).
type ListSelect uint8

// The selection options.
const (
	ListSelectSubscribed ListSelect = 1 << iota
	ListSelectRemote
	ListSelectRecursiveMatch
	ListSelectSpecialUse
)

// ListReturn is a set of LIST return options (RFC 5258, 5819, 6154).
type ListReturn uint8

// The return options.
const (
	ListReturnSubscribed ListReturn = 1 << iota
	ListReturnChildren
	ListReturnSpecialUse
	ListReturnStatus // ListCommand.Status holds the items
)

// ListCommand is a parsed LIST.
type ListCommand struct {
	Select    ListSelect
	Reference string   // decoded like a mailbox name, INBOX not canonicalised
	Patterns  []string // decoded; combine with Reference through ListPattern
	Return    ListReturn
	Status    []StatusItem // RETURN (STATUS (...)) (RFC 5819)

	// Extended is set when the command used LIST-EXTENDED syntax
	// (selection options, several patterns or return options), which
	// changes what the response carries (RFC 5258 §3).
	Extended bool
}

// ParseList parses the arguments of LIST:
//
//	SP ["(" [list-select-opt *(SP list-select-opt)] ")" SP] mailbox SP
//	(list-mailbox / "(" list-mailbox *(SP list-mailbox) ")")
//	[SP "RETURN" SP "(" [return-option *(SP return-option)] ")"]
func (d *Decoder) ParseList() (*ListCommand, error) {
	var c ListCommand
	if err := d.SP(); err != nil {
		return nil, err
	}
	ch, err := d.peek()
	if err != nil {
		return nil, err
	}
	if ch == '(' {
		c.Extended = true
		err := d.ReadList(func() error {
			opt, err := d.readKeyword("list-select-opt")
			if err != nil {
				return err
			}
			switch opt {
			case "SUBSCRIBED":
				c.Select |= ListSelectSubscribed
			case "REMOTE":
				c.Select |= ListSelectRemote
			case "RECURSIVEMATCH":
				c.Select |= ListSelectRecursiveMatch
			case "SPECIAL-USE":
				c.Select |= ListSelectSpecialUse
			default:
				// RFC 5258 §3: unrecognised selection options are BAD.
				return syntaxErr("list-select-opt", "unknown selection option")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// RFC 5258 §3: RECURSIVEMATCH alone (or only with REMOTE) is BAD.
		if c.Select&ListSelectRecursiveMatch != 0 && c.Select&^(ListSelectRemote|ListSelectRecursiveMatch) == 0 {
			return nil, syntaxErr("list-select-opt", "RECURSIVEMATCH needs another selection option")
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
	}
	if c.Reference, err = d.ReadReference(); err != nil {
		return nil, err
	}
	if err := d.SP(); err != nil {
		return nil, err
	}
	if ch, err = d.peek(); err != nil {
		return nil, err
	}
	if ch == '(' {
		c.Extended = true
		err = d.ReadList(func() error {
			p, err := d.ReadListMailbox()
			c.Patterns = append(c.Patterns, p)
			return err
		})
		if err == nil && len(c.Patterns) == 0 {
			err = syntaxErr("patterns", "empty list")
		}
	} else {
		var p string
		p, err = d.ReadListMailbox()
		c.Patterns = []string{p}
	}
	if err != nil {
		return nil, err
	}
	sp, err := d.AcceptSP()
	if err != nil {
		return nil, err
	}
	if sp {
		c.Extended = true
		kw, err := d.readKeyword("list-return-opts")
		if err != nil {
			return nil, err
		}
		if kw != "RETURN" {
			return nil, syntaxErr("list-return-opts", "expected RETURN")
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		err = d.ReadList(func() error {
			opt, err := d.readKeyword("return-option")
			if err != nil {
				return err
			}
			switch opt {
			case "SUBSCRIBED":
				c.Return |= ListReturnSubscribed
			case "CHILDREN":
				c.Return |= ListReturnChildren
			case "SPECIAL-USE":
				c.Return |= ListReturnSpecialUse
			case "STATUS":
				if c.Return&ListReturnStatus != 0 {
					return syntaxErr("return-option", "STATUS given twice")
				}
				c.Return |= ListReturnStatus
				if err := d.SP(); err != nil {
					return err
				}
				c.Status, err = d.readStatusAtts()
				return err
			default:
				return syntaxErr("return-option", "unknown return option")
			}
			return nil
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

// ListPattern combines a LIST reference and pattern into the pattern to
// match mailbox names with: the reference is a prefix (RFC 9051 §6.3.9
// examples: "#news." + "comp.mail.*"), so it is simply prepended.
func ListPattern(reference, pattern string) string {
	return reference + pattern
}

// ListMatch reports whether the mailbox name matches a LIST pattern: "*"
// matches any characters, "%" any but the hierarchy delimiter (RFC 9051
// §6.3.9). INBOX (and the INBOX of "INBOX/x") matches case-insensitively,
// so "inbox" and "Inbox/%" find it. It runs in O(len(pattern)*len(name))
// whatever the pattern.
func ListMatch(pattern, name string) bool {
	// Collapse runs of wildcards: a run with "*" is "*", else "%".
	p := make([]byte, 0, len(pattern))
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if (c == '*' || c == '%') && len(p) > 0 {
			if last := p[len(p)-1]; last == '*' || last == '%' {
				if c == '*' {
					p[len(p)-1] = '*'
				}
				continue
			}
		}
		p = append(p, c)
	}
	inbox := len(name) >= 5 && name[:5] == "INBOX" && (len(name) == 5 || name[5] == Delimiter)
	n := len(name)
	prev := make([]bool, n+1)
	cur := make([]bool, n+1)
	prev[0] = true
	for _, pc := range p {
		cur[0] = prev[0] && (pc == '*' || pc == '%')
		for j := 1; j <= n; j++ {
			nc := name[j-1]
			switch pc {
			case '*':
				cur[j] = prev[j] || cur[j-1]
			case '%':
				cur[j] = prev[j] || (cur[j-1] && nc != Delimiter)
			default:
				eq := nc == pc
				if !eq && inbox && j <= 5 && 'a' <= pc && pc <= 'z' {
					eq = nc == pc-('a'-'A')
				}
				cur[j] = prev[j-1] && eq
			}
		}
		prev, cur = cur, prev
	}
	return prev[n]
}

// SelectCommand is a parsed SELECT or EXAMINE.
type SelectCommand struct {
	Mailbox   string
	CondStore bool     // (CONDSTORE) (RFC 7162 §3.1.8)
	QResync   *QResync // (QRESYNC (...)) (RFC 7162 §3.2.5)
}

// QResync holds the QRESYNC select parameter. The sets never contain "*"
// or "$"; a set with no Ranges was not given.
type QResync struct {
	UIDValidity uint32
	ModSeq      int64
	KnownUIDs   SeqSet
	// KnownSeqs and KnownSeqUIDs are the seq-match-data: message numbers
	// and the UIDs the client believes they have, pairwise in order.
	KnownSeqs, KnownSeqUIDs SeqSet
}

// ParseSelect parses the arguments of SELECT and EXAMINE:
//
//	SP mailbox [SP "(" select-param *(SP select-param) ")"]
func (d *Decoder) ParseSelect() (*SelectCommand, error) {
	var c SelectCommand
	var err error
	if c.Mailbox, err = d.SPMailbox(); err != nil {
		return nil, err
	}
	sp, err := d.AcceptSP()
	if err != nil {
		return nil, err
	}
	if sp {
		err := d.ReadList(func() error {
			name, err := d.readKeyword("select-param")
			if err != nil {
				return err
			}
			switch name {
			case "CONDSTORE":
				c.CondStore = true
				return nil
			case "QRESYNC":
				if c.QResync != nil {
					return syntaxErr("select-param", "QRESYNC given twice")
				}
				if err := d.SP(); err != nil {
					return err
				}
				c.QResync, err = d.readQResync()
				return err
			}
			return syntaxErr("select-param", "unknown parameter")
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

// readQResync reads "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")" (RFC 7162 §7).
func (d *Decoder) readQResync() (*QResync, error) {
	const elem = "qresync"
	var q QResync
	var err error
	if err = d.ExpectByte('(', elem); err != nil {
		return nil, err
	}
	if q.UIDValidity, err = d.readNZNumber(elem); err != nil {
		return nil, err
	}
	if err = d.SP(); err != nil {
		return nil, err
	}
	if q.ModSeq, err = d.ReadNumber64(); err != nil {
		return nil, err
	}
	sp, err := d.AcceptSP()
	if err != nil {
		return nil, err
	}
	if sp {
		ch, err := d.peek()
		if err != nil {
			return nil, err
		}
		if ch != '(' {
			if q.KnownUIDs, err = d.readStaticSeqSet(elem); err != nil {
				return nil, err
			}
			if sp, err = d.AcceptSP(); err != nil {
				return nil, err
			}
		}
		if sp {
			if err = d.ExpectByte('(', elem); err != nil {
				return nil, err
			}
			if q.KnownSeqs, err = d.readStaticSeqSet(elem); err != nil {
				return nil, err
			}
			if err = d.SP(); err != nil {
				return nil, err
			}
			if q.KnownSeqUIDs, err = d.readStaticSeqSet(elem); err != nil {
				return nil, err
			}
			if err = d.ExpectByte(')', elem); err != nil {
				return nil, err
			}
		}
	}
	if err = d.ExpectByte(')', elem); err != nil {
		return nil, err
	}
	return &q, nil
}

// readStaticSeqSet reads a sequence-set without "*" or "$".
func (d *Decoder) readStaticSeqSet(elem string) (SeqSet, error) {
	s, err := d.ReadSeqSet()
	if err == nil && s.Dynamic() {
		err = syntaxErr(elem, "\"*\" or \"$\" not allowed")
	}
	return s, err
}

// AppendMessage is one message of an APPEND: its optional flags and date,
// and the literal to stream into the store.
type AppendMessage struct {
	Flags    store.Flags
	Keywords []string
	Date     time.Time // zero when absent
	// UTF8 is set for RFC 6855's "UTF8 (~{n}...)" form.
	UTF8 bool
	// Data streams the message; Data.Binary is set for literal8 (RFC
	// 3516), and Data.HasNUL tells whether a non-binary literal carried a
	// NUL, which the session refuses.
	Data *LiteralReader
}

// ParseAppendMailbox reads "SP mailbox" after APPEND. The session then
// checks the mailbox (NO [TRYCREATE] before any continuation, RFC 9051
// §6.3.12) and calls ReadAppendMessage.
func (d *Decoder) ParseAppendMailbox() (string, error) { return d.SPMailbox() }

// ReadAppendMessage reads one append-message up to its data:
//
//	SP [flag-list SP] [date-time SP] (literal / literal8 / "UTF8" SP "(" literal8 ")")
//
// A literal over max (APPENDLIMIT, quota) is refused with
// *LiteralTooBigError before the continuation is sent; answer NO [TOOBIG]
// (RFC 7889 §4) and call SkipLine. Otherwise the session reads Data to its
// end, then calls AppendDone. MULTIAPPEND (RFC 3502) repeats the pair.
func (d *Decoder) ReadAppendMessage(max int64) (*AppendMessage, error) {
	const elem = "append"
	var m AppendMessage
	var err error
	if err = d.SP(); err != nil {
		return nil, err
	}
	ch, err := d.peek()
	if err != nil {
		return nil, err
	}
	if ch == '(' {
		if m.Flags, m.Keywords, err = d.ReadFlagList(); err != nil {
			return nil, err
		}
		if err = d.SP(); err != nil {
			return nil, err
		}
		if ch, err = d.peek(); err != nil {
			return nil, err
		}
	}
	if ch == '"' {
		if m.Date, err = d.ReadDateTime(); err != nil {
			return nil, err
		}
		if err = d.SP(); err != nil {
			return nil, err
		}
		if ch, err = d.peek(); err != nil {
			return nil, err
		}
	}
	switch ch {
	case '{', '~':
	case 'U', 'u':
		kw, err := d.readKeyword(elem)
		if err != nil {
			return nil, err
		}
		if kw != "UTF8" {
			return nil, syntaxErr(elem, "expected literal")
		}
		if err = d.SP(); err != nil {
			return nil, err
		}
		if err = d.ExpectByte('(', elem); err != nil {
			return nil, err
		}
		if ch, err = d.peek(); err != nil {
			return nil, err
		}
		if ch != '~' {
			return nil, syntaxErr(elem, "UTF8 data must be a literal8")
		}
		m.UTF8 = true
	default:
		return nil, syntaxErr(elem, "expected literal")
	}
	if m.Data, err = d.ReadLiteral(max); err != nil {
		return nil, err
	}
	d.appendParen = m.UTF8
	return &m, nil
}

// AppendDone is called after a message's Data was read: it reports true
// when the APPEND command ended (its CRLF consumed), false when another
// message follows (MULTIAPPEND; call ReadAppendMessage again).
func (d *Decoder) AppendDone() (bool, error) {
	if d.appendParen {
		if err := d.ExpectByte(')', "append"); err != nil {
			return false, err
		}
		d.appendParen = false
	}
	ch, err := d.peek()
	if err != nil {
		return false, err
	}
	switch ch {
	case ' ':
		return false, nil
	case '\r', '\n':
		return true, d.ExpectCRLF()
	}
	return false, syntaxErr("append", "expected SP or end of line, got %s", describe(ch))
}

// ParseEnable parses the arguments of ENABLE (RFC 5161): 1*(SP capability),
// returned in upper case.
func (d *Decoder) ParseEnable() ([]string, error) {
	var caps []string
	for {
		if err := d.SP(); err != nil {
			return nil, err
		}
		if err := d.charge(elemCost); err != nil {
			return nil, err
		}
		c, err := d.readKeyword("capability")
		if err != nil {
			return nil, err
		}
		caps = append(caps, c)
		eol, err := d.AtEOL()
		if err != nil {
			return nil, err
		}
		if eol {
			return caps, d.ExpectCRLF()
		}
	}
}

// IDParam is one field of an ID parameter list (RFC 2971).
type IDParam struct {
	Key   string
	Value string
	Nil   bool // the value was NIL
}

// Limits of RFC 2971 §3.3 on what a client may send in ID.
const (
	maxIDParams      = 30
	maxIDKeyLength   = 30
	maxIDValueLength = 1024
)

// ParseID parses the arguments of ID (RFC 2971): SP ("(" *(string SP
// nstring) ")" / NIL). NIL gives nil. Over 30 pairs, keys over 30 bytes or
// values over 1024 bytes (RFC 2971 §3.3) give *LimitError.
func (d *Decoder) ParseID() ([]IDParam, error) {
	if err := d.SP(); err != nil {
		return nil, err
	}
	ch, err := d.peek()
	if err != nil {
		return nil, err
	}
	if ch != '(' {
		kw, err := d.readKeyword("id-params-list")
		if err != nil {
			return nil, err
		}
		if kw != "NIL" {
			return nil, syntaxErr("id-params-list", "expected list or NIL")
		}
		return nil, d.ExpectCRLF()
	}
	params := []IDParam{}
	err = d.ReadList(func() error {
		if len(params) == maxIDParams {
			return &LimitError{What: "ID parameter list", Limit: maxIDParams}
		}
		var p IDParam
		var err error
		if p.Key, err = d.ReadString(); err != nil {
			return err
		}
		if len(p.Key) > maxIDKeyLength {
			return &LimitError{What: "ID field name", Limit: maxIDKeyLength}
		}
		if err = d.SP(); err != nil {
			return err
		}
		if p.Value, p.Nil, err = d.ReadNString(); err != nil {
			return err
		}
		if len(p.Value) > maxIDValueLength {
			return &LimitError{What: "ID field value", Limit: maxIDValueLength}
		}
		params = append(params, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return params, d.ExpectCRLF()
}

// AuthenticateCommand is a parsed AUTHENTICATE.
type AuthenticateCommand struct {
	Mechanism string // upper case
	// InitialResponse is the decoded SASL-IR initial response (RFC 4959),
	// valid when HasInitialResponse; "=" gives an empty one.
	InitialResponse    []byte
	HasInitialResponse bool
}

// ParseAuthenticate parses the arguments of AUTHENTICATE:
//
//	SP auth-type [SP (base64 / "=")]
//
// Further client responses are read with ReadSASLResponse.
func (d *Decoder) ParseAuthenticate() (*AuthenticateCommand, error) {
	var c AuthenticateCommand
	var err error
	if err = d.SP(); err != nil {
		return nil, err
	}
	if c.Mechanism, err = d.readKeyword("auth-type"); err != nil {
		return nil, err
	}
	sp, err := d.AcceptSP()
	if err != nil {
		return nil, err
	}
	if sp {
		b, err := d.readWhile(&base64Chars, "initial-resp")
		if err != nil {
			return nil, err
		}
		c.HasInitialResponse = true
		if string(b) == "=" {
			c.InitialResponse = []byte{}
		} else if c.InitialResponse, err = decodeBase64("initial-resp", b); err != nil {
			return nil, err
		}
	}
	if err := d.ExpectCRLF(); err != nil {
		return nil, err
	}
	return &c, nil
}

var base64Chars = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" {
		t[c] = true
	}
	return t
}()

// ParseCompress parses the argument of COMPRESS (RFC 4978): SP algorithm,
// returned in upper case ("DEFLATE" is the only one defined).
func (d *Decoder) ParseCompress() (string, error) {
	if err := d.SP(); err != nil {
		return "", err
	}
	alg, err := d.readKeyword("algorithm")
	if err != nil {
		return "", err
	}
	return alg, d.ExpectCRLF()
}

// CreateCommand is a parsed CREATE.
type CreateCommand struct {
	Mailbox string
	// SpecialUse are the USE attributes (RFC 6154 §3, CREATE-SPECIAL-USE),
	// with a backslash; the known ones in their canonical case (`\Sent`),
	// others as sent, for the session to refuse with NO [USEATTR].
	SpecialUse []string
}

var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

// ParseCreate parses the arguments of CREATE:
//
//	SP mailbox [SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"]
func (d *Decoder) ParseCreate() (*CreateCommand, error) {
	var c CreateCommand
	var err error
	if c.Mailbox, err = d.SPMailbox(); err != nil {
		return nil, err
	}
	sp, err := d.AcceptSP()
	if err != nil {
		return nil, err
	}
	if sp {
		err := d.ReadList(func() error {
			name, err := d.readKeyword("create-param")
			if err != nil {
				return err
			}
			if name != "USE" {
				return syntaxErr("create-param", "unknown parameter")
			}
			if err := d.SP(); err != nil {
				return err
			}
			return d.ReadList(func() error {
				if err := d.ExpectByte('\\', "use-attr"); err != nil {
					return err
				}
				a, err := d.ReadAtom()
				if err != nil {
					return err
				}
				attr := `\` + a
				for _, su := range specialUses {
					if strings.EqualFold(su, attr) {
						attr = su
					}
				}
				c.SpecialUse = append(c.SpecialUse, attr)
				return nil
			})
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
