package imapd

// Evaluating a search program (RFC 9051 §6.4.4) over the selected
// mailbox. Evaluation is three-valued: a message is first judged on its
// index row alone (flags, dates, sizes, sets, MODSEQ, object ids), which
// settles most keys; only messages still undecided have their header read,
// and only those still undecided after that have their body scanned.

import (
	"bytes"
	"errors"
	"io"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
)

// searchTri is a three-valued truth: a key may not be decidable before
// the header or body is read.
type searchTri uint8

const (
	searchNo searchTri = iota
	searchYes
	searchMaybe
)

func searchBool(b bool) searchTri {
	if b {
		return searchYes
	}
	return searchNo
}

// searchProgram is a search key prepared for a run.
type searchProgram struct {
	key *imapwire.SearchKey
	// needles are the folded BODY and TEXT strings; needle maps each such
	// key to its index.
	needles [][]byte
	needle  map[*imapwire.SearchKey]int
	// headerValue holds the folded value of each HEADER key.
	headerValue map[*imapwire.SearchKey][]byte
	needHeader  bool // a key needs the header
	needBody    bool // a key needs the body
	usesModSeq  bool // MODSEQ key: the answer reports the highest MODSEQ
	// fields are the index columns evaluation needs.
	fields  store.RowFields
	now     time.Time
	nview   uint32          // messages in the view, for "*" in sequence sets
	lastUID uint32          // highest UID in the view, for "*" in UID sets
	saved   map[uint32]bool // "$": the saved result
	// recent are the UIDs recent to the session (none for IMAP4rev2).
	recent []uidRange
}

// searchPrepare walks a search key once, collecting what evaluation needs.
func (s *session) searchPrepare(k *imapwire.SearchKey) *searchProgram {
	p := &searchProgram{
		key:         k,
		needle:      map[*imapwire.SearchKey]int{},
		headerValue: map[*imapwire.SearchKey][]byte{},
		now:         time.Now(),
		nview:       uint32(len(s.sel.uids)),
		lastUID:     s.sel.lastUID(),
	}
	if !s.rev2 {
		p.recent = s.sel.recent
	}
	byText := map[string]int{}
	var walk func(k *imapwire.SearchKey)
	walk = func(k *imapwire.SearchKey) {
		switch k.Op {
		case imapwire.SearchAnd, imapwire.SearchOr, imapwire.SearchNot:
			for _, c := range k.Children {
				walk(c)
			}
		case imapwire.SearchSeq, imapwire.SearchUID:
			if k.Seq.Saved && p.saved == nil {
				p.saved = make(map[uint32]bool, len(s.searchRes))
				for _, u := range s.searchRes {
					p.saved[u] = true
				}
			}
		case imapwire.SearchFlag, imapwire.SearchKeyword, imapwire.SearchModSeq:
			p.fields |= store.RowFlags
		case imapwire.SearchBefore, imapwire.SearchOn, imapwire.SearchSince, imapwire.SearchSavedBefore, imapwire.SearchSavedOn, imapwire.SearchSavedSince, imapwire.SearchOlder, imapwire.SearchYounger:
			p.fields |= store.RowDates
		case imapwire.SearchLarger, imapwire.SearchSmaller:
			p.fields |= store.RowSize
		case imapwire.SearchEmailID, imapwire.SearchThreadID:
			p.fields |= store.RowObjectIDs
		}
		switch k.Op {
		case imapwire.SearchHeader:
			p.needHeader = true
			p.headerValue[k] = searchFoldString(strings.ToValidUTF8(k.Value, "\uFFFD"))
		case imapwire.SearchSentBefore, imapwire.SearchSentOn, imapwire.SearchSentSince:
			p.needHeader = true
		case imapwire.SearchBody, imapwire.SearchText:
			p.needBody = true
			if k.Op == imapwire.SearchText {
				p.needHeader = true
			}
			f := string(searchFoldString(strings.ToValidUTF8(k.Value, "\uFFFD")))
			i, ok := byText[f]
			if !ok {
				i = len(p.needles)
				byText[f] = i
				p.needles = append(p.needles, []byte(f))
			}
			p.needle[k] = i
		case imapwire.SearchModSeq:
			p.usesModSeq = true
		}
	}
	walk(k)
	if p.needHeader || p.needBody {
		// The file, its size, and the internal date as the fallback of a
		// missing Date header.
		p.fields |= store.RowBlob | store.RowSize | store.RowDates
	}
	return p
}

// searchMsg is one message under evaluation and what was read of it.
type searchMsg struct {
	m   store.Message
	seq uint32
	// hdr is the parsed header once read (hdrRead); hdrFound tells which
	// needles the header text holds (TEXT).
	hdrRead  bool
	hdr      []searchField
	hdrFound []bool
	sent     time.Time // the Date header, or the internal date
	// bodyFound tells which needles the body holds, once scanned.
	bodyFound []bool
}

// eval evaluates k for msg with what is known so far.
func (p *searchProgram) eval(k *imapwire.SearchKey, msg *searchMsg) searchTri {
	m := &msg.m
	switch k.Op {
	case imapwire.SearchAll, imapwire.SearchSaveDateSupported:
		return searchYes
	case imapwire.SearchAnd:
		res := searchYes
		for _, c := range k.Children {
			switch p.eval(c, msg) {
			case searchNo:
				return searchNo
			case searchMaybe:
				res = searchMaybe
			}
		}
		return res
	case imapwire.SearchOr:
		res := searchNo
		for _, c := range k.Children {
			switch p.eval(c, msg) {
			case searchYes:
				return searchYes
			case searchMaybe:
				res = searchMaybe
			}
		}
		return res
	case imapwire.SearchNot:
		switch p.eval(k.Children[0], msg) {
		case searchYes:
			return searchNo
		case searchNo:
			return searchYes
		}
		return searchMaybe
	case imapwire.SearchSeq:
		if k.Seq.Saved {
			return searchBool(p.saved[m.UID])
		}
		return searchBool(k.Seq.Contains(msg.seq, p.nview))
	case imapwire.SearchUID:
		if k.Seq.Saved {
			return searchBool(p.saved[m.UID])
		}
		return searchBool(k.Seq.Contains(m.UID, p.lastUID))
	case imapwire.SearchFlag:
		return searchBool(m.Flags&k.Flag != 0)
	case imapwire.SearchKeyword:
		return searchBool(slices.ContainsFunc(m.Keywords, func(kw string) bool { return strings.EqualFold(kw, k.Value) }))
	case imapwire.SearchRecent:
		return searchBool(recentHas(p.recent, m.UID))
	case imapwire.SearchBefore, imapwire.SearchOn, imapwire.SearchSince:
		// RFC 9051 §6.4.4: the internal date, disregarding time and
		// timezone: its calendar day where it was received.
		return searchBool(searchDateMatch(k.Op, m.InternalDate, k.Date))
	case imapwire.SearchSavedBefore, imapwire.SearchSavedOn, imapwire.SearchSavedSince:
		if m.SaveDate.IsZero() {
			return searchNo // RFC 8514 §4.2: no save date matches nothing
		}
		return searchBool(searchDateMatch(k.Op, m.SaveDate, k.Date))
	case imapwire.SearchSentBefore, imapwire.SearchSentOn, imapwire.SearchSentSince:
		if !msg.hdrRead {
			return searchMaybe
		}
		// The Date header in its own timezone (RFC 9051 §6.4.4).
		return searchBool(searchDateMatch(k.Op, msg.sent, k.Date))
	case imapwire.SearchLarger:
		return searchBool(m.Size > k.Number)
	case imapwire.SearchSmaller:
		return searchBool(m.Size < k.Number)
	case imapwire.SearchOlder:
		// RFC 5032: internal date at least n seconds ago.
		return searchBool(p.now.Sub(m.InternalDate) >= time.Duration(k.Number)*time.Second)
	case imapwire.SearchYounger:
		return searchBool(p.now.Sub(m.InternalDate) < time.Duration(k.Number)*time.Second)
	case imapwire.SearchModSeq:
		// RFC 7162 §3.1.5: MODSEQ equal to or greater than the value.
		// jodmai keeps one mod-sequence per message, so the optional
		// entry name and type change nothing.
		return searchBool(m.ModSeq >= k.Number)
	case imapwire.SearchEmailID:
		return searchBool(m.EmailID == k.Value)
	case imapwire.SearchThreadID:
		return searchBool(m.ThreadID != "" && m.ThreadID == k.Value)
	case imapwire.SearchHeader:
		if !msg.hdrRead {
			return searchMaybe
		}
		want := p.headerValue[k]
		for i := range msg.hdr {
			f := &msg.hdr[i]
			if !strings.EqualFold(f.name, k.Field) {
				continue
			}
			// RFC 9051 §6.4.4: an empty string matches any message with
			// the field.
			if len(want) == 0 {
				return searchYes
			}
			if !f.isFolded {
				f.folded, f.isFolded = searchFold(nil, []byte(f.value)), true
			}
			if bytes.Contains(f.folded, want) {
				return searchYes
			}
			if searchAddressFields[strings.ToLower(f.name)] {
				if !f.isAddrs {
					f.addrs, f.isAddrs = searchAddresses(f.value), true
				}
				if bytes.Contains(f.addrs, want) {
					return searchYes
				}
			}
		}
		return searchNo
	case imapwire.SearchBody:
		if msg.bodyFound == nil {
			return searchMaybe
		}
		return searchBool(msg.bodyFound[p.needle[k]])
	case imapwire.SearchText:
		i := p.needle[k]
		if msg.hdrRead && msg.hdrFound[i] {
			return searchYes
		}
		if msg.bodyFound != nil && msg.bodyFound[i] {
			return searchYes
		}
		if msg.hdrRead && msg.bodyFound != nil {
			return searchNo
		}
		return searchMaybe
	}
	return searchNo
}

// searchDateMatch compares the calendar day of t (in t's own location)
// with day (midnight UTC of the key's date).
func searchDateMatch(op imapwire.SearchOp, t, day time.Time) bool {
	y, mo, d := t.Date()
	td := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	switch op {
	case imapwire.SearchBefore, imapwire.SearchSentBefore, imapwire.SearchSavedBefore:
		return td.Before(day)
	case imapwire.SearchOn, imapwire.SearchSentOn, imapwire.SearchSavedOn:
		return td.Equal(day)
	default: // SINCE: on or after
		return !td.Before(day)
	}
}

// searchParseDate parses a Date header value (RFC 5322 §3.3, with the
// obsolete forms net/mail knows), tolerating comments and odd spacing.
func searchParseDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	if t, err := mail.ParseDate(v); err == nil {
		return t, true
	}
	// Drop comments, collapse white space, and try again.
	var b strings.Builder
	depth := 0
	for _, r := range v {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	clean := strings.Join(strings.Fields(b.String()), " ")
	if t, err := mail.ParseDate(clean); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// searchLoadHeader reads and parses the message header for header keys.
func (p *searchProgram) searchLoadHeader(msg *searchMsg, r io.Reader) error {
	h, err := fetchScanHeader(r, message.MaxHeaderBytes)
	if err != nil {
		return err
	}
	msg.hdrRead = true
	msg.hdr = searchParseHeader(h)
	msg.sent = msg.m.InternalDate
	for _, f := range msg.hdr {
		if strings.EqualFold(f.name, "Date") {
			if t, ok := searchParseDate(f.value); ok {
				msg.sent = t
			}
			break
		}
	}
	if len(p.needles) > 0 {
		sc := newSearchScanner(p.needles)
		for _, f := range msg.hdr {
			sc.Write([]byte(f.name + ": " + f.value + "\n"))
		}
		sc.flush()
		msg.hdrFound = sc.found
	}
	return nil
}

// searchRun evaluates the program over the view and returns the matching
// messages in UID order, with at least the row fields evaluation needs and
// more.
func (s *session) searchRun(p *searchProgram, more store.RowFields) ([]store.Message, error) {
	rows, err := s.fetchViewRows(p.fields | more)
	if err != nil {
		return nil, err
	}
	out := rows[:0] // matches are written over the rows already judged
	var maybe []*searchMsg
	var msg searchMsg
	for i := range rows {
		msg.m, msg.seq = rows[i], s.sel.seqOf(rows[i].UID)
		switch p.eval(p.key, &msg) {
		case searchYes:
			out = append(out, rows[i])
		case searchMaybe:
			cp := msg
			maybe = append(maybe, &cp)
		}
	}
	if len(maybe) == 0 {
		return out, nil
	}

	// The undecided messages in batches, so that what is read of them
	// (headers, structures) is held for one batch at a time: first the
	// header, one file read each; then, for those still undecided, the
	// structures and a streaming scan of the body.
	var sc *searchScanner
	if p.needBody {
		sc = newSearchScanner(p.needles)
	}
	for start := 0; start < len(maybe); start += fetchChunk {
		batch := maybe[start:min(start+fetchChunk, len(maybe))]
		if p.needHeader {
			still := make([]*searchMsg, 0, len(batch))
			for _, msg := range batch {
				f, err := s.acct.OpenBody(msg.m)
				if searchIsNoMessage(err) {
					continue // expunged meanwhile
				}
				if err != nil {
					return nil, err
				}
				err = p.searchLoadHeader(msg, f)
				f.Close()
				if err != nil {
					return nil, err
				}
				switch p.eval(p.key, msg) {
				case searchYes:
					out = append(out, msg.m)
				case searchMaybe:
					still = append(still, msg)
				}
			}
			batch = still
		}
		if p.needBody && len(batch) > 0 {
			if out, err = s.searchBodies(p, batch, sc, out); err != nil {
				return nil, err
			}
		}
		for _, msg := range maybe[start:min(start+fetchChunk, len(maybe))] {
			msg.hdr = nil // done with this batch
		}
	}
	slices.SortFunc(out, func(a, b store.Message) int { return int(int64(a.UID) - int64(b.UID)) })
	return out, nil
}

// searchBodies scans the bodies of a batch of undecided messages and
// appends those that match to out.
func (s *session) searchBodies(p *searchProgram, batch []*searchMsg, sc *searchScanner, out []store.Message) ([]store.Message, error) {
	rows := make([]store.Message, len(batch))
	for i, msg := range batch {
		rows[i] = msg.m
	}
	metas, err := s.fetchMetas(rows)
	if err != nil {
		return nil, err
	}
	for _, msg := range batch {
		root := metas[msg.m.ID]
		if root == nil {
			continue // expunged meanwhile
		}
		f, err := s.acct.OpenBody(msg.m)
		if searchIsNoMessage(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc.restart()
		err = searchScanBody(root, f, msg.m.Size, sc)
		f.Close()
		if err != nil {
			return nil, err
		}
		msg.bodyFound = slices.Clone(sc.found)
		if p.eval(p.key, msg) == searchYes {
			out = append(out, msg.m)
		}
	}
	return out, nil
}

func searchIsNoMessage(err error) bool { return errors.Is(err, store.ErrNoMessage) }
