package imapd

// FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.8, §7.5.2), with BINARY (RFC
// 3516), CONDSTORE/QRESYNC (RFC 7162: MODSEQ, CHANGEDSINCE, VANISHED),
// OBJECTID (RFC 8474), PREVIEW (RFC 8970) and SAVEDATE (RFC 8514).
//
// One query reads the index rows of up to 4096 messages, with only the
// columns the items need; structures are loaded in batches only when an
// item needs them; body data streams from the message file into literals.
// Memory is bounded by the batch sizes, not by the mailbox or message
// size.
//
// Messages expunged by another session but not yet announced (and messages
// gone from the store) are skipped. A UID FETCH answers a plain OK (RFC
// 9051 §6.4.8: UIDs that do not exist are ignored); a FETCH by sequence
// number that names one answers OK [EXPUNGEISSUED] (RFC 5530) after the
// data of the others, as Dovecot does: the command did what it could (RFC
// 2180 §4.1.2 allows leaving the expunged ones out), and the code tells the
// client that its view is stale and that a NOOP will bring the EXPUNGE.

import (
	"bytes"
	"errors"
	"io"
	"slices"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/message/mimetext"
	"github.com/jodmai/jodmai/internal/store"
)

// fetchPlan is a FETCH command prepared for execution.
type fetchPlan struct {
	items []imapwire.FetchItem // deduplicated, in request order
	uid   bool                 // UID FETCH: UID in every response
	// seen: a requested item sets \Seen (and the mailbox is read-write).
	seen bool
	// modseq: MODSEQ in every response (requested, or CONDSTORE enabled).
	modseq bool
	// meta: an item needs the message structure (envOnly: only its
	// envelope); file: the message file.
	meta, envOnly, file         bool
	hasUID, hasFlags, hasModSeq bool
	// vals is scratch space for one message's prepared values, head for
	// the start of its file.
	vals []fetchValue
	head []byte
	// fields are the index columns the items need.
	fields store.RowFields
}

func newFetchPlan(items []imapwire.FetchItem, uid, readOnly, condstore bool) *fetchPlan {
	p := &fetchPlan{uid: uid}
	seen := map[string]bool{}
	structure := false // an item needs more of the structure than the envelope
	for _, it := range items {
		key := it.String()
		if it.Att == imapwire.FetchPreview {
			key = "PREVIEW" // PREVIEW and PREVIEW (LAZY) are one item
		}
		if it.SetsSeen() && !readOnly {
			p.seen = true
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		p.items = append(p.items, it)
		switch it.Att {
		case imapwire.FetchUID:
			p.hasUID = true
		case imapwire.FetchFlags:
			p.hasFlags = true
		case imapwire.FetchModSeq:
			p.hasModSeq = true
		}
		if fetchNeedsMeta(it) {
			p.meta = true
			if it.Att != imapwire.FetchEnvelope {
				structure = true
			}
		}
		switch it.Att {
		case imapwire.FetchRFC822, imapwire.FetchRFC822Header, imapwire.FetchRFC822Text, imapwire.FetchBodySection, imapwire.FetchBinary, imapwire.FetchBinarySize, imapwire.FetchPreview:
			p.file = true
			p.fields |= store.RowBlob | store.RowSize
		case imapwire.FetchFlags, imapwire.FetchModSeq:
			p.fields |= store.RowFlags
		case imapwire.FetchInternalDate, imapwire.FetchSaveDate:
			p.fields |= store.RowDates
		case imapwire.FetchRFC822Size:
			p.fields |= store.RowSize
		case imapwire.FetchEmailID, imapwire.FetchThreadID:
			p.fields |= store.RowObjectIDs
		}
	}
	p.envOnly = p.meta && !structure
	p.modseq = p.hasModSeq || condstore
	if p.modseq || p.seen {
		p.fields |= store.RowFlags
	}
	p.vals = make([]fetchValue, len(p.items))
	return p
}

// fetchNeedsMeta reports whether an item needs the stored structure.
// BODY[] and BINARY[] are the whole file; BODY[HEADER], BODY[TEXT] and
// BODY[HEADER.FIELDS ...] of the message itself (and RFC822.HEADER and
// RFC822.TEXT) are found by reading the header, which costs less than
// decoding the structure.
func fetchNeedsMeta(it imapwire.FetchItem) bool {
	switch it.Att {
	case imapwire.FetchEnvelope, imapwire.FetchBodyStructure, imapwire.FetchBody, imapwire.FetchPreview:
		return true
	case imapwire.FetchBodySection:
		// The top-level sections are found by reading the header.
		return len(it.Section.Part) > 0
	case imapwire.FetchBinary, imapwire.FetchBinarySize:
		return len(it.Section.Part) > 0
	}
	return false
}

func cmdFetch(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseFetch()
	if err != nil {
		return err
	}
	if c.Vanished {
		// RFC 7162 §3.2.6: only with UID FETCH, CHANGEDSINCE and QRESYNC
		// enabled.
		switch {
		case !uid:
			return bad("", "VANISHED is only allowed in UID FETCH")
		case !s.qresync:
			return bad("", "VANISHED needs ENABLE QRESYNC")
		case !c.HasChangedSince:
			return bad("", "VANISHED needs CHANGEDSINCE")
		}
	}
	if !uid {
		if err := s.fetchCheckSeqSet(c.Seq); err != nil {
			return err
		}
	}
	// RFC 7162 §3.1: FETCH with CHANGEDSINCE or the MODSEQ item enables
	// CONDSTORE.
	if c.HasChangedSince || c.Has(imapwire.FetchModSeq) {
		s.fetchEnableCondStore()
	}
	plan := newFetchPlan(c.Items, uid, s.sel.readOnly, s.condstore)

	uids := s.resolveSet(c.Seq, uid)
	if c.Vanished {
		if err := s.fetchVanished(c); err != nil {
			return s.serverBug(err)
		}
	}
	fields := plan.fields
	if c.HasChangedSince {
		fields |= store.RowFlags
	}
	// The set is handled in slices, so that a FETCH of a huge mailbox
	// holds a bounded number of rows at a time.
	var st fetchState
	for start := 0; start < len(uids); start += fetchRowChunk {
		part := uids[start:min(start+fetchRowChunk, len(uids))]
		if err := s.fetchSlice(plan, c, part, fields, &st); err != nil {
			return err
		}
	}
	switch {
	case st.unknownCTE:
		// RFC 3516 §4.3.
		return no("UNKNOWN-CTE", "cannot decode the content-transfer-encoding of a requested part")
	case st.gone && !uid:
		return okCode("EXPUNGEISSUED", "some of the requested messages no longer exist")
	}
	return nil
}

// fetchRowChunk is how many messages' rows a FETCH reads at a time.
const fetchRowChunk = 4096

// fetchState is what a FETCH learned over its slices.
type fetchState struct {
	// gone: a requested message was expunged (pending, or gone from the
	// store); unknownCTE: a message was skipped for [UNKNOWN-CTE].
	gone, unknownCTE bool
}

// fetchSlice runs a FETCH for a slice of its UIDs (ascending).
func (s *session) fetchSlice(plan *fetchPlan, c *imapwire.FetchCommand, uids []uint32, fields store.RowFields, st *fetchState) error {
	rows, err := s.fetchRows(uids, fields)
	if err != nil {
		return s.serverBug(err)
	}
	rows = s.fetchDropPending(rows)
	if len(rows) < len(uids) {
		st.gone = true
	}
	if c.HasChangedSince {
		// RFC 7162 §3.1.4.1: only messages changed after the value.
		rows = slices.DeleteFunc(rows, func(m store.Message) bool { return m.ModSeq <= c.ChangedSince })
	}
	var flagsChanged map[uint32]bool
	if plan.seen {
		if flagsChanged, err = s.fetchSetSeen(rows); err != nil {
			return s.serverBug(err)
		}
	}
	for start := 0; start < len(rows); start += fetchChunk {
		chunk := rows[start:min(start+fetchChunk, len(rows))]
		var metas map[int64]*message.Part
		switch {
		case plan.envOnly:
			envs, err := s.fetchEnvelopes(chunk)
			if err != nil {
				return s.serverBug(err)
			}
			metas = make(map[int64]*message.Part, len(envs))
			for id, env := range envs {
				metas[id] = &message.Part{Envelope: env}
			}
		case plan.meta:
			if metas, err = s.fetchMetas(chunk); err != nil {
				return s.serverBug(err)
			}
		}
		for _, m := range chunk {
			var root *message.Part
			if plan.meta {
				if root = metas[m.ID]; root == nil {
					st.gone = true
					continue
				}
			}
			err := s.fetchOne(plan, m, root, flagsChanged[m.UID])
			switch {
			case errors.Is(err, errFetchUnknownCTE):
				st.unknownCTE = true
			case errors.Is(err, store.ErrNoMessage):
				st.gone = true
			case err != nil:
				return err
			}
		}
		if err := s.enc.Err(); err != nil {
			return err
		}
	}
	return nil
}

// errFetchUnknownCTE marks a message skipped because a BINARY item names a
// part whose transfer encoding jodmai cannot decode.
var errFetchUnknownCTE = errors.New("unknown content-transfer-encoding")

// fetchCheckSeqSet refuses message sequence numbers beyond the view (RFC 9051
// §9 seq-number: they are invalid). A range with "*" is taken as what it
// covers in the view, so "1:*" in an empty mailbox and "5:*" in one of
// three messages are accepted, as clients send them blindly (Dovecot does
// the same).
func (s *session) fetchCheckSeqSet(set imapwire.SeqSet) error {
	n := uint32(len(s.sel.uids))
	for _, r := range set.Ranges {
		if r.Start == 0 || r.Stop == 0 {
			continue
		}
		if v := max(r.Start, r.Stop); v > n {
			return bad("", "invalid message sequence number %d (%d messages)", v, n)
		}
	}
	return nil
}

// fetchEnableCondStore turns CONDSTORE on through a CONDSTORE-enabling
// command (RFC 7162 §3.1). If it was off and a mailbox is selected, the
// client learns the mailbox's HIGHESTMODSEQ now, as Dovecot does, since it
// did not get it from SELECT.
func (s *session) fetchEnableCondStore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.sel != nil {
		s.enc.Atom("* OK [HIGHESTMODSEQ ").Number64(s.sel.modseq).Atom("] highest").CRLF()
	}
}

// fetchVanished writes "* VANISHED (EARLIER) uids" for the UIDs of the
// requested set expunged after CHANGEDSINCE (RFC 7162 §3.2.6), before any
// FETCH response. UIDs still in the view are left to the VANISHED that
// announces them after the command.
func (s *session) fetchVanished(c *imapwire.FetchCommand) error {
	_, gone, err := s.acct.Changes(s.ctx(), s.sel.mb.ID, c.ChangedSince)
	if err != nil {
		return err
	}
	largest := s.sel.lastUID()
	for _, g := range gone {
		largest = max(largest, g.UID)
	}
	var v []uint32
	for _, g := range gone {
		if c.Seq.Contains(g.UID, largest) && s.sel.seqOf(g.UID) == 0 {
			v = append(v, g.UID)
		}
	}
	if len(v) > 0 {
		slices.Sort(v)
		s.enc.Atom("* VANISHED (EARLIER) ").NumSet(v).CRLF()
	}
	return nil
}

// fetchSetSeen adds \Seen to the messages in rows that lack it, in one
// store call (RFC 9051 §6.4.5: BODY[...] without .PEEK sets \Seen), and
// updates rows. It returns the UIDs whose flags changed: their FETCH
// responses include FLAGS.
func (s *session) fetchSetSeen(rows []store.Message) (map[uint32]bool, error) {
	var unseen []uint32
	for _, m := range rows {
		if m.Flags&store.FlagSeen == 0 {
			unseen = append(unseen, m.UID)
		}
	}
	if len(unseen) == 0 {
		return nil, nil
	}
	wctx, cancel := s.writeCtx()
	defer cancel()
	res, err := s.acct.SetFlags(wctx, s.sel.mb.ID, unseen, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen})
	if err != nil {
		return nil, err
	}
	changed := make(map[uint32]bool, len(res.Changed))
	if s.sel.reported == nil {
		s.sel.reported = make(map[uint32]int64, len(res.Changed))
	}
	for _, m := range res.Changed {
		changed[m.UID] = true
		s.sel.reported[m.UID] = m.ModSeq
		if i, ok := slices.BinarySearchFunc(rows, m.UID, func(r store.Message, u uint32) int { return int(int64(r.UID) - int64(u)) }); ok {
			rows[i].Flags, rows[i].Keywords, rows[i].ModSeq = m.Flags, m.Keywords, m.ModSeq
		}
	}
	return changed, nil
}

// fetchValue is what one item of one message needs from the message file,
// computed before its response line starts, so that a failure can still
// skip the message cleanly.
type fetchValue struct {
	span    fetchSpan
	enc     string // BINARY: the transfer encoding span is decoded from
	size    int64  // decoded size (BINARY, BINARY.SIZE)
	nul     bool   // the decoded data holds NUL: literal8
	preview string
}

// fetchOne writes the FETCH response of one message.
func (s *session) fetchOne(plan *fetchPlan, m store.Message, root *message.Part, flagsChanged bool) error {
	seq := s.sel.seqOf(m.UID)
	if seq == 0 {
		return nil
	}
	var f store.Body
	if plan.file {
		var err error
		if f, err = s.acct.OpenBody(m); err != nil {
			if errors.Is(err, store.ErrNoMessage) {
				return err
			}
			return s.serverBug(err)
		}
		defer f.Close()
	}
	vals, err := s.fetchPrepare(plan, m, root, f)
	if err != nil {
		return err
	}

	if plan.hasFlags || flagsChanged {
		s.announceKeywords(m.Keywords)
	}
	e := s.enc
	e.Atom("* ").Number(seq).Atom(" FETCH (")
	first := true
	sep := func() {
		if !first {
			e.SP()
		}
		first = false
	}
	// RFC 9051 §6.4.8: UID FETCH responses include UID; RFC 7162 §3.1:
	// so do those that implicitly set \Seen once CONDSTORE is enabled.
	if (plan.uid || (flagsChanged && s.condstore)) && !plan.hasUID {
		sep()
		e.Atom("UID ").Number(m.UID)
	}
	for i, it := range plan.items {
		sep()
		if err := s.fetchWriteItem(it, m, root, f, &vals[i]); err != nil {
			return err
		}
	}
	// RFC 9051 §6.4.5: when \Seen was set, the new flags are returned.
	if flagsChanged && !plan.hasFlags {
		sep()
		e.Atom("FLAGS ").Flags(m.Flags, m.Keywords, s.recentFlag(m.UID)...)
	}
	if plan.modseq && !plan.hasModSeq {
		sep()
		e.Atom("MODSEQ (").Number64(m.ModSeq).Byte(')')
	}
	e.Byte(')').CRLF()
	return e.Err()
}

// fetchPrepare computes the values of the items that read the message
// file (section bounds, filtered headers, decoded sizes, preview).
func (s *session) fetchPrepare(plan *fetchPlan, m store.Message, root *message.Part, f store.Body) ([]fetchValue, error) {
	vals := plan.vals
	clear(vals)
	if !plan.file {
		return vals, nil
	}
	if plan.head == nil {
		plan.head = make([]byte, fetchHeadSize)
	}
	sr := &fetchFileSections{f: f, size: m.Size, buf: plan.head}
	// With only ENVELOPE loaded, root is a stub without part bounds: the
	// top-level sections are then found by reading the header, as when
	// no structure was loaded at all (a stub's zero bounds gave an empty
	// BODY[HEADER.FIELDS ...] beside ENVELOPE).
	sroot := root
	if plan.envOnly {
		sroot = nil
	}
	for i, it := range plan.items {
		v := &vals[i]
		var err error
		switch it.Att {
		case imapwire.FetchRFC822:
			v.span = fetchSpan{n: m.Size}
		case imapwire.FetchRFC822Header:
			v.span, err = fetchResolveSection(sroot, m.Size, imapwire.Section{Spec: imapwire.SectionHeader}, sr)
		case imapwire.FetchRFC822Text:
			v.span, err = fetchResolveSection(sroot, m.Size, imapwire.Section{Spec: imapwire.SectionText}, sr)
		case imapwire.FetchBodySection:
			v.span, err = fetchResolveSection(sroot, m.Size, it.Section, sr)
			v.span = fetchApplyPartial(v.span, it.Partial)
		case imapwire.FetchBinary, imapwire.FetchBinarySize:
			err = s.fetchPrepareBinary(it, m, root, f, v)
		case imapwire.FetchPreview:
			v.preview, err = mimetext.Preview(root, f, m.Size)
		}
		if err != nil {
			if errors.Is(err, errFetchUnknownCTE) {
				return nil, err
			}
			return nil, s.serverBug(err)
		}
	}
	return vals, nil
}

// fetchFileSections reads section data from one message file. The first
// bytes of the file are read once, into scratch space the plan reuses for
// every message; the top-level header is usually found within them.
type fetchFileSections struct {
	f     store.Body
	size  int64
	buf   []byte // scratch, fetchHeadSize bytes
	head  []byte // the first bytes of the file, once read
	hlen  int64
	hdone bool
}

// fetchHeadSize is how much of a message is read at once to find its
// header.
const fetchHeadSize = 16 << 10

func (fs *fetchFileSections) header(off, n int64) ([]byte, error) {
	if fs.head != nil && off+n <= int64(len(fs.head)) {
		return fs.head[off : off+n], nil
	}
	return fetchReadHeader(fs.f, off, n)
}

func (fs *fetchFileSections) topHeaderLen() (int64, error) {
	if fs.hdone {
		return fs.hlen, nil
	}
	got, err := fs.f.ReadAt(fs.buf[:min(fs.size, int64(len(fs.buf)))], 0)
	if err != nil && err != io.EOF {
		return 0, err
	}
	fs.head = fs.buf[:got]
	n, ok := fetchHeaderEnd(fs.head, int64(got) >= fs.size)
	if !ok {
		if n, err = fetchTopHeaderLen(io.NewSectionReader(fs.f, 0, fs.size)); err != nil {
			return 0, err
		}
	}
	fs.hlen, fs.hdone = n, true
	return n, nil
}

// fetchPrepareBinary resolves a BINARY[part] or BINARY.SIZE[part] item
// (RFC 3516 §4.2): the part's body decoded from its transfer encoding;
// BINARY[] is the whole message, undecoded.
func (s *session) fetchPrepareBinary(it imapwire.FetchItem, m store.Message, root *message.Part, f store.Body, v *fetchValue) error {
	if len(it.Section.Part) == 0 {
		v.span = fetchSpan{n: m.Size}
	} else {
		p := fetchFindPart(root, it.Section.Part)
		if p == nil {
			v.span = fetchSpan{missing: true}
			return nil
		}
		if !mimetext.KnownCTE(p.Encoding) {
			return errFetchUnknownCTE
		}
		v.enc = p.Encoding
		off, n := fetchClamp(p.BodyStart, p.End-p.BodyStart, m.Size)
		v.span = fetchSpan{off: off, n: n}
	}
	// One pass to learn the decoded size and whether it holds NUL.
	src := &mimetext.ErrReader{R: io.NewSectionReader(f, v.span.off, v.span.n)}
	dec, _ := mimetext.CTEReader(v.enc, src)
	var w fetchNULCounter
	if _, err := io.Copy(&w, dec); err != nil && src.Err == nil {
		return err
	}
	if src.Err != nil {
		return src.Err
	}
	v.size, v.nul = w.n, w.nul
	return nil
}

// fetchNULCounter counts bytes and notes NUL.
type fetchNULCounter struct {
	n   int64
	nul bool
}

func (w *fetchNULCounter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if !w.nul && bytes.IndexByte(p, 0) >= 0 {
		w.nul = true
	}
	return len(p), nil
}

// fetchWriteItem writes one data item of a FETCH response.
func (s *session) fetchWriteItem(it imapwire.FetchItem, m store.Message, root *message.Part, f store.Body, v *fetchValue) error {
	e := s.enc
	switch it.Att {
	case imapwire.FetchFlags:
		e.Atom("FLAGS ").Flags(m.Flags, m.Keywords, s.recentFlag(m.UID)...)
	case imapwire.FetchUID:
		e.Atom("UID ").Number(m.UID)
	case imapwire.FetchInternalDate:
		e.Atom("INTERNALDATE ").DateTime(m.InternalDate)
	case imapwire.FetchRFC822Size:
		e.Atom("RFC822.SIZE ").Number64(m.Size)
	case imapwire.FetchEnvelope:
		e.Atom("ENVELOPE ").Envelope(root.Envelope)
	case imapwire.FetchBodyStructure:
		e.Atom("BODYSTRUCTURE ").BodyStructure(root)
	case imapwire.FetchBody:
		e.Atom("BODY ").Body(root)
	case imapwire.FetchModSeq:
		e.Atom("MODSEQ (").Number64(m.ModSeq).Byte(')')
	case imapwire.FetchEmailID:
		e.Atom("EMAILID (").Atom(m.EmailID).Byte(')')
	case imapwire.FetchThreadID:
		if m.ThreadID == "" {
			e.Atom("THREADID NIL")
		} else {
			e.Atom("THREADID (").Atom(m.ThreadID).Byte(')')
		}
	case imapwire.FetchSaveDate:
		e.Atom("SAVEDATE ")
		if m.SaveDate.IsZero() {
			e.NIL()
		} else {
			e.DateTime(m.SaveDate)
		}
	case imapwire.FetchPreview:
		e.Atom("PREVIEW ").String(v.preview)
	case imapwire.FetchBinarySize:
		e.Atom(it.String()).SP()
		if v.span.missing {
			e.NIL()
		} else {
			e.Number64(v.size)
		}
	case imapwire.FetchBinary:
		e.Atom(it.String()).SP()
		if v.span.missing {
			e.NIL()
			break
		}
		return s.fetchWriteBinary(it, f, v)
	default: // RFC822, RFC822.HEADER, RFC822.TEXT, BODY[...]
		e.Atom(it.String()).SP()
		sp := v.span
		switch {
		case sp.missing:
			e.NIL()
		case sp.inMem:
			e.Literal(int64(len(sp.data)), fetchNoNUL{bytes.NewReader(sp.data)})
		default:
			e.Literal(sp.n, fetchNoNUL{io.NewSectionReader(f, sp.off, sp.n)})
		}
	}
	return e.Err()
}

// fetchWriteBinary streams the decoded data of a BINARY item, narrowed to
// its partial range, as a literal8 when it holds NUL (RFC 3516 §4.2).
func (s *session) fetchWriteBinary(it imapwire.FetchItem, f store.Body, v *fetchValue) error {
	start, n := int64(0), v.size
	if p := it.Partial; p != nil {
		start = min(p.Offset, v.size)
		n = min(p.Count, v.size-start)
	}
	src := &mimetext.ErrReader{R: io.NewSectionReader(f, v.span.off, v.span.n)}
	dec, _ := mimetext.CTEReader(v.enc, src)
	if start > 0 {
		if _, err := io.CopyN(io.Discard, dec, start); err != nil {
			return s.fetchDataErr(src, err)
		}
	}
	r := io.LimitReader(dec, n)
	if v.nul {
		s.enc.Literal8(n, r)
	} else {
		s.enc.Literal(n, r)
	}
	if err := s.enc.Err(); err != nil {
		return s.fetchDataErr(src, err)
	}
	return nil
}

// fetchDataErr reports a failure in the middle of a response: the
// response cannot be completed, so the error ends the session.
func (s *session) fetchDataErr(src *mimetext.ErrReader, err error) error {
	if src.Err != nil {
		err = src.Err
	}
	s.log.Error("imap fetch: message data failed mid-response", "account", s.user.Address, "err", err)
	return err
}

// fetchNoNUL passes data through with NUL turned into 0x80, as Dovecot
// does: a literal may not hold NUL (RFC 9051 §4.3), and a stored message
// may (an APPEND literal that had it, a BINARYMIME delivery). Only BINARY
// sends the data unchanged, as literal8 (RFC 3516). The size is unchanged.
type fetchNoNUL struct{ r io.Reader }

func (f fetchNoNUL) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	b := p[:n]
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			break
		}
		b[i] = 0x80
		b = b[i+1:]
	}
	return n, err
}
