package imapwire

// SEARCH, SORT and THREAD arguments: RFC 9051 §6.4.4 and RFC 3501 §6.4.4
// (search keys), RFC 4731 and RFC 5182 (RETURN options, "$"), RFC 7162
// (MODSEQ), RFC 5032 (OLDER, YOUNGER), RFC 8474 (EMAILID, THREADID), RFC
// 8514 (SAVED*), RFC 5256 and RFC 5957 (SORT, THREAD).

import (
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/store"
)

// MaxSearchDepth bounds the nesting of parentheses, NOT and OR in one
// search program, so that a hostile one cannot exhaust the stack of the
// parser or of the evaluator walking the tree.
const MaxSearchDepth = 64

// SearchOp is the kind of a SearchKey node.
type SearchOp uint8

// The search key kinds. Keys with a negated form (UNSEEN, UNKEYWORD, OLD,
// ...) are normalised to SearchNot over the positive key, NEW to
// SearchAnd(SearchRecent, SearchNot(SearchFlag \Seen)), and the address and
// subject keys (BCC CC FROM SUBJECT TO) to SearchHeader with the field name.
const (
	SearchAll               SearchOp = iota + 1
	SearchAnd                        // Children, all must match
	SearchOr                         // Children (2), either matches
	SearchNot                        // Children[0] must not match
	SearchSeq                        // Seq: message sequence numbers
	SearchUID                        // Seq: UIDs
	SearchFlag                       // Flag: a system flag is set
	SearchKeyword                    // Value: the keyword is set
	SearchRecent                     // \Recent (IMAP4rev1)
	SearchHeader                     // Field contains Value ("" matches any message with the field)
	SearchBody                       // body contains Value
	SearchText                       // header or body contains Value
	SearchBefore                     // internal date before Date (day granularity)
	SearchOn                         // internal date on Date
	SearchSince                      // internal date on or after Date
	SearchSentBefore                 // Date: header before Date
	SearchSentOn                     // Date: header on Date
	SearchSentSince                  // Date: header on or after Date
	SearchSavedBefore                // save date before Date (RFC 8514)
	SearchSavedOn                    // save date on Date
	SearchSavedSince                 // save date on or after Date
	SearchSaveDateSupported          // the mailbox supports save dates (RFC 8514)
	SearchLarger                     // RFC822.SIZE > Number
	SearchSmaller                    // RFC822.SIZE < Number
	SearchOlder                      // internal date at least Number seconds ago (RFC 5032)
	SearchYounger                    // internal date less than Number seconds ago (RFC 5032)
	SearchModSeq                     // MODSEQ >= Number; ModSeqEntry/ModSeqType optional (RFC 7162 §3.1.5)
	SearchEmailID                    // EMAILID is Value (RFC 8474)
	SearchThreadID                   // THREADID is Value (RFC 8474)
)

var searchOpNames = [...]string{
	SearchAll: "all", SearchAnd: "and", SearchOr: "or", SearchNot: "not",
	SearchSeq: "seq", SearchUID: "uid", SearchFlag: "flag", SearchKeyword: "keyword",
	SearchRecent: "recent", SearchHeader: "header", SearchBody: "body", SearchText: "text",
	SearchBefore: "before", SearchOn: "on", SearchSince: "since",
	SearchSentBefore: "sentbefore", SearchSentOn: "senton", SearchSentSince: "sentsince",
	SearchSavedBefore: "savedbefore", SearchSavedOn: "savedon", SearchSavedSince: "savedsince",
	SearchSaveDateSupported: "savedatesupported", SearchLarger: "larger", SearchSmaller: "smaller",
	SearchOlder: "older", SearchYounger: "younger", SearchModSeq: "modseq",
	SearchEmailID: "emailid", SearchThreadID: "threadid",
}

// SearchKey is a node of a search program.
type SearchKey struct {
	Op       SearchOp
	Children []*SearchKey // SearchAnd, SearchOr, SearchNot
	Seq      SeqSet       // SearchSeq, SearchUID
	Flag     store.Flags  // SearchFlag
	Field    string       // SearchHeader: field name as sent (BCC etc. give "Bcc")
	Value    string       // string argument
	Date     time.Time    // date keys: midnight UTC of the day
	Number   int64        // LARGER, SMALLER, OLDER, YOUNGER, MODSEQ

	// ModSeqEntry and ModSeqType are MODSEQ's optional entry-name (e.g.
	// "/flags/\\draft") and entry-type-req ("priv", "shared" or "all",
	// lower case); servers without per-flag mod-sequences may ignore them.
	ModSeqEntry, ModSeqType string
}

// String returns a compact s-expression of the tree, for logs and tests.
func (k *SearchKey) String() string {
	var b strings.Builder
	k.format(&b)
	return b.String()
}

func (k *SearchKey) format(b *strings.Builder) {
	b.WriteByte('(')
	if int(k.Op) < len(searchOpNames) && searchOpNames[k.Op] != "" {
		b.WriteString(searchOpNames[k.Op])
	} else {
		b.WriteString("?")
	}
	switch k.Op {
	case SearchAnd, SearchOr, SearchNot:
		for _, c := range k.Children {
			b.WriteByte(' ')
			c.format(b)
		}
	case SearchSeq, SearchUID:
		b.WriteString(" " + k.Seq.String())
	case SearchFlag:
		b.WriteString(" " + flagName(k.Flag))
	case SearchHeader:
		b.WriteString(" " + strconv.Quote(k.Field) + " " + strconv.Quote(k.Value))
	case SearchKeyword, SearchBody, SearchText, SearchEmailID, SearchThreadID:
		b.WriteString(" " + strconv.Quote(k.Value))
	case SearchBefore, SearchOn, SearchSince, SearchSentBefore, SearchSentOn, SearchSentSince,
		SearchSavedBefore, SearchSavedOn, SearchSavedSince:
		b.WriteString(" " + k.Date.Format("2006-01-02"))
	case SearchLarger, SearchSmaller, SearchOlder, SearchYounger:
		b.WriteString(" " + strconv.FormatInt(k.Number, 10))
	case SearchModSeq:
		if k.ModSeqEntry != "" {
			b.WriteString(" " + strconv.Quote(k.ModSeqEntry) + " " + k.ModSeqType)
		}
		b.WriteString(" " + strconv.FormatInt(k.Number, 10))
	}
	b.WriteByte(')')
}

func flagName(f store.Flags) string {
	switch f {
	case store.FlagSeen:
		return `\Seen`
	case store.FlagAnswered:
		return `\Answered`
	case store.FlagFlagged:
		return `\Flagged`
	case store.FlagDeleted:
		return `\Deleted`
	case store.FlagDraft:
		return `\Draft`
	}
	return "?"
}

// SearchReturn is a set of ESEARCH result options (RFC 4731, RFC 5182).
type SearchReturn uint8

// The RETURN options.
const (
	ReturnMin SearchReturn = 1 << iota
	ReturnMax
	ReturnAll
	ReturnCount
	ReturnSave
)

// SearchCommand is a parsed SEARCH (or UID SEARCH).
type SearchCommand struct {
	// ESearch is set when a RETURN option list was given: the answer is an
	// ESEARCH response (RFC 4731 §3.1). Return is then never 0: RETURN ()
	// means RETURN (ALL).
	ESearch bool
	Return  SearchReturn

	// Charset is the CHARSET argument as sent ("" when absent); the session
	// answers NO [BADCHARSET] for one it does not support.
	Charset string

	Key *SearchKey
}

// ParseSearch parses the arguments of SEARCH, from the SP after the
// command name through the final CRLF:
//
//	[SP "RETURN" SP "(" [search-return-opt *(SP ...)] ")"]
//	SP ["CHARSET" SP charset SP] search-key *(SP search-key)
func (d *Decoder) ParseSearch() (*SearchCommand, error) {
	var c SearchCommand
	if err := d.SP(); err != nil {
		return nil, err
	}
	// RETURN and CHARSET are told from search keys once read; a key read
	// in their place is handed to readSearchProgram.
	name, err := d.maybeKeyword()
	if err != nil {
		return nil, err
	}
	if name == "RETURN" {
		if err := d.SP(); err != nil {
			return nil, err
		}
		c.ESearch = true
		err := d.ReadList(func() error {
			opt, err := d.readKeyword("search-return-opt")
			if err != nil {
				return err
			}
			switch opt {
			case "MIN":
				c.Return |= ReturnMin
			case "MAX":
				c.Return |= ReturnMax
			case "ALL":
				c.Return |= ReturnAll
			case "COUNT":
				c.Return |= ReturnCount
			case "SAVE":
				c.Return |= ReturnSave
			default:
				return syntaxErr("search-return-opt", "unknown option")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if c.Return == 0 {
			c.Return = ReturnAll // RFC 4731 §3.1
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		if name, err = d.maybeKeyword(); err != nil {
			return nil, err
		}
	}
	if name == "CHARSET" {
		if err := d.SP(); err != nil {
			return nil, err
		}
		if c.Charset, err = d.readCharset(); err != nil {
			return nil, err
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		name = ""
	}
	if c.Key, err = d.readSearchProgram(name); err != nil {
		return nil, err
	}
	return &c, nil
}

// maybeKeyword reads an upper-cased atom if a letter is next, else returns
// "" and consumes nothing.
func (d *Decoder) maybeKeyword() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') {
		return d.readKeyword("search-key")
	}
	return "", nil
}

// readCharset reads charset = atom / quoted.
func (d *Decoder) readCharset() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if c == '"' {
		return d.readQuoted()
	}
	return d.ReadAtom()
}

// readSearchProgram reads search-key *(SP search-key) CRLF as one key;
// first is the name of the first key when the caller already read it.
func (d *Decoder) readSearchProgram(first string) (*SearchKey, error) {
	var keys []*SearchKey
	for {
		var k *SearchKey
		var err error
		if first != "" {
			if err = d.charge(elemCost * 2); err == nil {
				k, err = d.searchKeyNamed(first, 0)
			}
			first = ""
		} else {
			k, err = d.readSearchKey(0)
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		eol, err := d.AtEOL()
		if err != nil {
			return nil, err
		}
		if eol {
			break
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
	}
	if err := d.ExpectCRLF(); err != nil {
		return nil, err
	}
	if len(keys) == 1 {
		return keys[0], nil
	}
	return &SearchKey{Op: SearchAnd, Children: keys}, nil
}

// searchHeaderKeys maps the address and subject keys to header fields.
var searchHeaderKeys = map[string]string{
	"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To",
}

var searchFlagKeys = map[string]store.Flags{
	"ANSWERED": store.FlagAnswered, "DELETED": store.FlagDeleted, "DRAFT": store.FlagDraft,
	"FLAGGED": store.FlagFlagged, "SEEN": store.FlagSeen,
}

var searchDateKeys = map[string]SearchOp{
	"BEFORE": SearchBefore, "ON": SearchOn, "SINCE": SearchSince,
	"SENTBEFORE": SearchSentBefore, "SENTON": SearchSentOn, "SENTSINCE": SearchSentSince,
	"SAVEDBEFORE": SearchSavedBefore, "SAVEDON": SearchSavedOn, "SAVEDSINCE": SearchSavedSince,
}

func not(k *SearchKey) *SearchKey { return &SearchKey{Op: SearchNot, Children: []*SearchKey{k}} }

// readSearchKey reads one search-key at nesting depth.
func (d *Decoder) readSearchKey(depth int) (*SearchKey, error) {
	const elem = "search-key"
	if depth >= MaxSearchDepth {
		return nil, &LimitError{What: "search nesting", Limit: MaxSearchDepth}
	}
	if err := d.charge(elemCost * 2); err != nil {
		return nil, err
	}
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c == '(':
		var keys []*SearchKey
		err := d.ReadList(func() error {
			k, err := d.readSearchKey(depth + 1)
			keys = append(keys, k)
			return err
		})
		if err != nil {
			return nil, err
		}
		switch len(keys) {
		case 0:
			return nil, syntaxErr(elem, "empty parenthesized list")
		case 1:
			return keys[0], nil
		}
		return &SearchKey{Op: SearchAnd, Children: keys}, nil
	case c == '*' || c == '$' || ('0' <= c && c <= '9'):
		s, err := d.ReadSeqSet()
		if err != nil {
			return nil, err
		}
		return &SearchKey{Op: SearchSeq, Seq: s}, nil
	}
	name, err := d.readKeyword(elem)
	if err != nil {
		return nil, err
	}
	return d.searchKeyNamed(name, depth)
}

// searchKeyNamed reads the arguments of the search key name (upper case).
func (d *Decoder) searchKeyNamed(name string, depth int) (*SearchKey, error) {
	const elem = "search-key"
	if f, ok := searchFlagKeys[name]; ok {
		return &SearchKey{Op: SearchFlag, Flag: f}, nil
	}
	if strings.HasPrefix(name, "UN") {
		if f, ok := searchFlagKeys[name[2:]]; ok {
			return not(&SearchKey{Op: SearchFlag, Flag: f}), nil
		}
	}
	if field, ok := searchHeaderKeys[name]; ok {
		v, err := d.spAString()
		if err != nil {
			return nil, err
		}
		return &SearchKey{Op: SearchHeader, Field: field, Value: v}, nil
	}
	if op, ok := searchDateKeys[name]; ok {
		if err := d.SP(); err != nil {
			return nil, err
		}
		t, err := d.ReadDate()
		if err != nil {
			return nil, err
		}
		return &SearchKey{Op: op, Date: t}, nil
	}
	switch name {
	case "ALL":
		return &SearchKey{Op: SearchAll}, nil
	case "RECENT":
		return &SearchKey{Op: SearchRecent}, nil
	case "NEW":
		return &SearchKey{Op: SearchAnd, Children: []*SearchKey{
			{Op: SearchRecent}, not(&SearchKey{Op: SearchFlag, Flag: store.FlagSeen}),
		}}, nil
	case "OLD":
		return not(&SearchKey{Op: SearchRecent}), nil
	case "SAVEDATESUPPORTED":
		return &SearchKey{Op: SearchSaveDateSupported}, nil
	case "BODY", "TEXT":
		v, err := d.spAString()
		if err != nil {
			return nil, err
		}
		op := SearchBody
		if name == "TEXT" {
			op = SearchText
		}
		return &SearchKey{Op: op, Value: v}, nil
	case "HEADER":
		f, err := d.spAString()
		if err != nil {
			return nil, err
		}
		v, err := d.spAString()
		if err != nil {
			return nil, err
		}
		return &SearchKey{Op: SearchHeader, Field: f, Value: v}, nil
	case "KEYWORD", "UNKEYWORD":
		if err := d.SP(); err != nil {
			return nil, err
		}
		kw, err := d.readWhile(&atomChars, "flag-keyword")
		if err != nil {
			return nil, err
		}
		k := &SearchKey{Op: SearchKeyword, Value: string(kw)}
		if name == "UNKEYWORD" {
			k = not(k)
		}
		return k, nil
	case "LARGER", "SMALLER":
		if err := d.SP(); err != nil {
			return nil, err
		}
		n, err := d.ReadNumber64()
		if err != nil {
			return nil, err
		}
		op := SearchLarger
		if name == "SMALLER" {
			op = SearchSmaller
		}
		return &SearchKey{Op: op, Number: n}, nil
	case "OLDER", "YOUNGER":
		if err := d.SP(); err != nil {
			return nil, err
		}
		n, err := d.ReadNZNumber()
		if err != nil {
			return nil, err
		}
		op := SearchOlder
		if name == "YOUNGER" {
			op = SearchYounger
		}
		return &SearchKey{Op: op, Number: int64(n)}, nil
	case "UID":
		if err := d.SP(); err != nil {
			return nil, err
		}
		s, err := d.ReadSeqSet()
		if err != nil {
			return nil, err
		}
		return &SearchKey{Op: SearchUID, Seq: s}, nil
	case "NOT":
		if err := d.SP(); err != nil {
			return nil, err
		}
		k, err := d.readSearchKey(depth + 1)
		if err != nil {
			return nil, err
		}
		return not(k), nil
	case "OR":
		var kids [2]*SearchKey
		for i := range kids {
			if err := d.SP(); err != nil {
				return nil, err
			}
			k, err := d.readSearchKey(depth + 1)
			if err != nil {
				return nil, err
			}
			kids[i] = k
		}
		return &SearchKey{Op: SearchOr, Children: kids[:]}, nil
	case "MODSEQ":
		return d.readSearchModSeq()
	case "EMAILID", "THREADID":
		if err := d.SP(); err != nil {
			return nil, err
		}
		id, err := d.readObjectID()
		if err != nil {
			return nil, err
		}
		op := SearchEmailID
		if name == "THREADID" {
			op = SearchThreadID
		}
		return &SearchKey{Op: op, Value: id}, nil
	}
	return nil, syntaxErr(elem, "unknown search key")
}

func (d *Decoder) spAString() (string, error) {
	if err := d.SP(); err != nil {
		return "", err
	}
	return d.ReadAString()
}

// readSearchModSeq reads the rest of RFC 7162 §7's search-modsequence:
// "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer.
func (d *Decoder) readSearchModSeq() (*SearchKey, error) {
	const elem = "search-modsequence"
	k := &SearchKey{Op: SearchModSeq}
	if err := d.SP(); err != nil {
		return nil, err
	}
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	if c == '"' {
		// entry-name = entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE
		if k.ModSeqEntry, err = d.readQuoted(); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(strings.ToLower(k.ModSeqEntry), "/flags/") || len(k.ModSeqEntry) == len("/flags/") {
			return nil, syntaxErr(elem, "invalid entry name")
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
		t, err := d.readKeyword(elem)
		if err != nil {
			return nil, err
		}
		switch t {
		case "PRIV", "SHARED", "ALL":
			k.ModSeqType = strings.ToLower(t)
		default:
			return nil, syntaxErr(elem, "invalid entry type")
		}
		if err := d.SP(); err != nil {
			return nil, err
		}
	}
	if k.Number, err = d.ReadNumber64(); err != nil {
		return nil, err
	}
	return k, nil
}

// readObjectID reads objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474
// §6).
func (d *Decoder) readObjectID() (string, error) {
	b, err := d.readWhile(&objectIDChars, "objectid")
	if err != nil {
		return "", err
	}
	if len(b) > 255 {
		return "", syntaxErr("objectid", "longer than 255 characters")
	}
	return string(b), nil
}

var objectIDChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	t['_'], t['-'] = true, true
	return t
}()

// SortKey is a SORT criterion key (RFC 5256 §3, RFC 5957).
type SortKey uint8

// The sort keys.
const (
	SortArrival SortKey = iota + 1
	SortCc
	SortDate
	SortFrom
	SortSize
	SortSubject
	SortTo
	SortDisplayFrom
	SortDisplayTo
)

var sortKeys = map[string]SortKey{
	"ARRIVAL": SortArrival, "CC": SortCc, "DATE": SortDate, "FROM": SortFrom, "SIZE": SortSize,
	"SUBJECT": SortSubject, "TO": SortTo, "DISPLAYFROM": SortDisplayFrom, "DISPLAYTO": SortDisplayTo,
}

// SortCriterion is one sort criterion.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// SortCommand is a parsed SORT (or UID SORT).
type SortCommand struct {
	Criteria []SortCriterion
	Charset  string // required by RFC 5256; the session checks it
	Key      *SearchKey
}

// ParseSort parses the arguments of SORT, from the SP after the command
// name through the final CRLF (RFC 5256 §5):
//
//	SP "(" sort-criterion *(SP sort-criterion) ")" SP charset 1*(SP search-key)
func (d *Decoder) ParseSort() (*SortCommand, error) {
	var c SortCommand
	if err := d.SP(); err != nil {
		return nil, err
	}
	err := d.ReadList(func() error {
		name, err := d.readKeyword("sort-criterion")
		if err != nil {
			return err
		}
		var sc SortCriterion
		if name == "REVERSE" {
			sc.Reverse = true
			if err := d.SP(); err != nil {
				return err
			}
			if name, err = d.readKeyword("sort-key"); err != nil {
				return err
			}
		}
		k, ok := sortKeys[name]
		if !ok {
			return syntaxErr("sort-key", "unknown sort key")
		}
		sc.Key = k
		c.Criteria = append(c.Criteria, sc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(c.Criteria) == 0 {
		return nil, syntaxErr("sort-criteria", "empty list")
	}
	if c.Charset, c.Key, err = d.readSearchCriteria(); err != nil {
		return nil, err
	}
	return &c, nil
}

// readSearchCriteria reads SP charset 1*(SP search-key) CRLF (RFC 5256).
func (d *Decoder) readSearchCriteria() (string, *SearchKey, error) {
	if err := d.SP(); err != nil {
		return "", nil, err
	}
	cs, err := d.readCharset()
	if err != nil {
		return "", nil, err
	}
	if err := d.SP(); err != nil {
		return "", nil, err
	}
	k, err := d.readSearchProgram("")
	return cs, k, err
}

// ThreadCommand is a parsed THREAD (or UID THREAD).
type ThreadCommand struct {
	Algorithm string // upper case: "ORDEREDSUBJECT", "REFERENCES", or another the session refuses
	Charset   string
	Key       *SearchKey
}

// ParseThread parses the arguments of THREAD, from the SP after the command
// name through the final CRLF (RFC 5256 §5):
//
//	SP thread-alg SP charset 1*(SP search-key)
func (d *Decoder) ParseThread() (*ThreadCommand, error) {
	var c ThreadCommand
	var err error
	if err = d.SP(); err != nil {
		return nil, err
	}
	if c.Algorithm, err = d.readKeyword("thread-alg"); err != nil {
		return nil, err
	}
	if c.Charset, c.Key, err = d.readSearchCriteria(); err != nil {
		return nil, err
	}
	return &c, nil
}
