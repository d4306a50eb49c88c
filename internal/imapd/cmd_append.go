package imapd

import (
	"errors"
	"io"
	"strconv"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
)

// This file: APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), BINARY
// literal8 (RFC 3516 §4.4), the UTF8 data item (RFC 6855 §4), APPENDLIMIT
// (RFC 7889), UIDPLUS APPENDUID (RFC 4315 §3) and QUOTA (RFC 9208).
//
// Each message streams from its literal through a CRLFWriter into a
// temporary body file (fsynced), so memory does not grow with the message.
// Bare LF line ends become CRLF: stored messages have CRLF line ends, and
// the size clients later see (RFC822.SIZE, quota usage) is the size after
// that conversion, which may exceed the literal's. A literal8 (RFC 3516
// §4.4) is stored as sent: its binary parts would be corrupted by the
// conversion, and BINARY.SIZE must be the size the client sent.
//
// NUL in a plain literal: RFC 9051 §4.3 makes a literal CHAR8, without
// NUL, but clients do send such messages (imaptest's random ones, mail
// that arrived broken) and Dovecot stores them. Refusing would lose mail,
// so jodmai stores them too. What goes out is clean instead: a non-BINARY
// FETCH sends NUL as 0x80, as Dovecot does (fetchNoNUL), and only BINARY
// answers with literal8. When every message of
// the command has arrived, they are committed in one index transaction:
// all are kept or none (RFC 3502 §3). A message appended to the selected
// mailbox reaches this session like any other, through the sync after the
// command (EXISTS).

// appendMessage is one received message waiting for the commit.
type appendMessage struct {
	tmp  *blob.Temp
	spec store.AppendMessage
}

func cmdAppend(s *session, tag, name string, uid bool) error {
	mbName, err := s.dec.ParseAppendMailbox()
	if err != nil {
		return err
	}
	// RFC 9051 §6.3.12: a missing mailbox is not created; NO [TRYCREATE],
	// before any continuation (the session skips the rest of the command).
	if _, err := s.acct.Mailbox(s.ctx(), mbName); errors.Is(err, store.ErrNoMailbox) {
		return no("TRYCREATE", "no such mailbox")
	} else if err != nil {
		return s.serverBug(err)
	}
	room, err := s.quotaRoom()
	if err != nil {
		return s.serverBug(err)
	}
	var msgs []appendMessage
	defer func() {
		for _, m := range msgs {
			m.tmp.Remove()
		}
	}()
	var total, inMemory int64
	for {
		// Refuse an oversized literal before its continuation: over
		// APPENDLIMIT (RFC 7889 §4: NO [TOOBIG]) or over what the quota
		// leaves (RFC 9208 §4.3: NO [OVERQUOTA]).
		max := s.lim.appendLimit()
		if room >= 0 {
			max = min(max, room-total)
		}
		m, err := s.dec.ReadAppendMessage(max)
		var tb *imapwire.LiteralTooBigError
		if errors.As(err, &tb) && !tb.Minus {
			if tb.Size > s.lim.appendLimit() {
				return no("TOOBIG", "message larger than the APPENDLIMIT of %d bytes", s.lim.appendLimit())
			}
			return no("OVERQUOTA", "storage quota exceeded")
		}
		if err != nil {
			return err
		}
		if m.UTF8 && !s.utf8 {
			// RFC 6855 §4: the UTF8 data item is for sessions that
			// enabled UTF8=ACCEPT.
			return bad("", "UTF8 APPEND data requires ENABLE UTF8=ACCEPT")
		}
		// MULTIAPPEND holds every body until the end: the first ones
		// may stay in memory (small ones are then kept inline in the
		// index), the rest go to files.
		tmp, err := s.appendReceive(m.Data, inMemory < appendMemory)
		if err != nil {
			return err
		}
		msgs = append(msgs, appendMessage{tmp: tmp, spec: store.AppendMessage{Body: tmp, Flags: m.Flags, Keywords: m.Keywords, Date: m.Date}})
		total += tmp.Size
		if tmp.InMemory() {
			inMemory += tmp.Size
		}
		if tmp.Size == 0 {
			// RFC 3502 §6.3.11: a zero-length message literal is an
			// error and MUST return NO; clients use it to cancel a
			// MULTIAPPEND midway. The rest of the command is skipped.
			return no("CANNOT", "cannot append an empty message")
		}
		done, err := s.dec.AppendDone()
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	// The literal sizes were checked; the stored ones may be larger
	// (bare LF to CRLF).
	if room >= 0 && total > room {
		return no("OVERQUOTA", "storage quota exceeded")
	}
	specs := make([]store.AppendMessage, len(msgs))
	for i, m := range msgs {
		specs[i] = m.spec
	}
	wctx, cancel := s.writeCtx()
	defer cancel()
	res, err := s.acct.AppendMessages(wctx, mbName, specs)
	if errors.Is(err, store.ErrNoMailbox) {
		return no("TRYCREATE", "no such mailbox")
	}
	if err != nil {
		return s.serverBug(err)
	}
	uids := make([]uint32, len(res.Messages))
	for i, m := range res.Messages {
		uids[i] = m.UID
	}
	// RFC 4315 §3: APPENDUID uidvalidity uid-set (RFC 3502 §6.3.11 for
	// several messages).
	return okCode("APPENDUID "+strconv.FormatUint(uint64(res.UIDValidity), 10)+" "+imapwire.FormatNumSet(uids), "APPEND completed")
}

// appendMemory bounds the bytes of the bodies one APPEND command holds in
// memory.
const appendMemory = 1 << 20

// appendReceive streams one literal into a finished temporary body (in
// memory while small, if memory is set). A failure to write the body is a
// NO [SERVERBUG] (the session discards the rest of the literal); a failure
// to read it ends the session.
func (s *session) appendReceive(data *imapwire.LiteralReader, memory bool) (*blob.Temp, error) {
	newBody := s.srv.Store.NewBodyFile
	if memory {
		newBody = s.srv.Store.NewBody
	}
	w, err := newBody()
	if err != nil {
		return nil, s.serverBug(err)
	}
	var cw io.Writer = w
	if !data.Binary {
		cw = message.NewCRLFWriter(w)
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := data.Read(buf)
		if n > 0 {
			if _, err := cw.Write(buf[:n]); err != nil {
				w.Abort()
				return nil, s.serverBug(err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.Abort()
			return nil, rerr
		}
	}
	tmp, err := w.Finish()
	if err != nil {
		return nil, s.serverBug(err)
	}
	return tmp, nil
}
