package smtpd

import (
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/forward"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/store"
)

// Replies for a message that cannot be taken.
var (
	errStoreTemp = reply(451, 4, 3, 0, "Temporary failure storing the message, try again later")
	// errStoreFull: RFC 5321 §4.2.3 452 "insufficient system storage"
	// (RFC 1870 §6.2 for SIZE), RFC 3463 X.3.1 "Mail system full".
	errStoreFull = reply(452, 4, 3, 1, "Insufficient system storage, try again later")
	errLineLong  = reply(500, 5, 5, 2, "Line too long")
	errTimeout   = reply(421, 4, 4, 2, "Timeout reading the message, closing connection")
	errGone      = reply(421, 4, 4, 0, "Message not complete, closing connection")
)

// storeFailed is the reply to a message that could not be stored or
// queued: temporary either way, 452 when the disk (or the quota of the
// server's user) is full, 451 otherwise.
func storeFailed(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return errStoreFull
	}
	return errStoreTemp
}

// Data receives the body of a DATA (dot-unstuffed by the engine's
// dataReader) or of BDAT chunks (isBDAT; r then spans them, and with
// several chunks Data runs in its own goroutine), stores it and delivers
// it. It reads r to its end or its first error (the engine reads what is
// left), so the reply comes after the whole message and the session stays
// in step. Its returned error is the reply; success is an *smtp.SMTPError
// with code 250, which the engine writes as it is.
//
// On submission the message gets the header fields it lacks (submit.go).
// On MX it is stored as received: a message without From (RFC 5322 §3.6
// requires one) is still accepted for local delivery. Refusing it would
// be a policy choice RFC 5322 does not ask of a receiver, Postfix accepts
// it too, and RFC 5321 §6.4 forbids a relay or delivery server to repair
// it; the DMARC check says "none (no From field)" (RFC 7489 §6.6.1 would
// allow a refusal).
func (s *session) Data(r io.Reader, isBDAT bool) error {
	s.mu.Lock()
	tx := s.tx
	tx.rcpts = append([]string(nil), tx.rcpts...)
	tx.local = append([]string(nil), tx.local...)
	tx.targets = append([]store.Target(nil), tx.targets...)
	tx.remote = append([]remote.Recipient(nil), tx.remote...)
	tx.notify = append([]remote.Recipient(nil), tx.notify...)
	acc := s.account
	log := s.log
	s.mu.Unlock()

	if len(tx.targets) == 0 && len(tx.remote) == 0 {
		// The engine only calls Data after an accepted RCPT; a Reset
		// racing a BDAT could get here.
		drain(r)
		return reply(554, 5, 5, 1, "No valid recipients")
	}

	id := blob.NewID()
	log = log.With("qid", id)
	ma := s.startMsgAuth(tx) // authres.go
	defer ma.close()
	// Small bodies stay in memory (see spool); the spool goes back to
	// the pool after the body is delivered and removed (defers run last
	// first).
	sp := s.srv.getSpool()
	var spooled []byte
	defer func() { s.srv.putSpool(sp, spooled) }()
	w := s.srv.Deliverer.Store.NewBodyBuffer(sp.body)
	bw := sp.bw
	bw.Reset(w)
	info := traceInfo{
		id: id, from: tx.from, helo: tx.helo, remote: s.remote, hostname: s.srv.hostname,
		rcpts: tx.rcpts, tls: s.tls, authed: acc != nil, utf8: tx.utf8, date: time.Now(),
	}
	info.rdns = s.clientName()
	trace := traceHeader(info)
	_, werr := bw.WriteString(ma.prefix(trace))

	var dst io.Writer = bw
	var fix *headerFixer
	if s.srv.Mode == ModeSubmission && acc != nil {
		fix = newHeaderFixer(bw, submitFields{from: acc.Address, date: info.date, messageID: id + "@" + info.hostname})
		dst = fix
	}
	size, rerr, werr := copyBody(message.NewCRLFWriter(dst), r, werr, sp.copy)
	if rerr == nil && werr == nil && fix != nil {
		werr = fix.Close()
	}
	bodyDone := time.Now()
	if rerr == nil && werr == nil {
		werr = bw.Flush()
	}
	if rerr != nil {
		w.Abort()
		switch {
		case errors.Is(rerr, errTooBig):
			// The engine reads the rest of the message, then sends this.
			log.Info("message refused: too big", "event", eventlog.Rejected, "from", tx.from, "rcpts", tx.rcpts, "code", 552, "reason", "message too big", "limit", s.conn.lim.maxMessageSize())
			return errTooBig
		case errors.Is(rerr, errDrainLimit):
			return errDrainLimit
		case errors.Is(rerr, errLongLine):
			// The engine reads the rest of the message, then sends this.
			log.Info("message refused: line too long", "event", eventlog.Rejected, "from", tx.from, "rcpts", tx.rcpts, "code", 500, "reason", "line too long", "limit", s.conn.lim.maxLineLength())
			return errLineLong
		case errors.Is(rerr, errDataReset):
			// RSET, EHLO or the connection closed inside BDAT; the
			// engine has answered already.
			return rerr
		case isTimeout(rerr):
			log.Info("message not received: timeout", "received", size)
			s.conn.hangUp()
			return errTimeout
		default:
			log.Info("message not received: connection failed", "received", size, "err", rerr)
			s.conn.hangUp()
			return errGone
		}
	}
	if werr != nil {
		w.Abort()
		log.Error("message not stored: write body", "err", werr)
		return storeFailed(werr)
	}
	body, err := ma.finishBody(w)
	if err != nil {
		log.Error("message not stored: finish body", "err", err)
		return storeFailed(err)
	}
	spooled = body.Data
	defer func() {
		if err := body.Remove(); err != nil {
			log.Warn("remove temporary body", "err", err)
		}
	}()
	// SPF, DKIM, DMARC on MX: the durable body with Authentication-Results.
	if body, tx.targets, err = s.authenticate(ma, body, trace, tx, log); err != nil {
		return err
	}
	msgid := bodyMessageID(body)
	// Accounts that forward their mail (forward package): those that
	// keep no copy are not in keep.
	keep := tx.targets
	var forwards []forward.Plan
	if len(tx.targets) > 0 && s.srv.Forward != nil && s.srv.Queue != nil {
		if keep, forwards, err = s.srv.Forward.Split(s.ctx, body, tx.from, tx.targets, log); err != nil {
			log.Error("message not delivered: forwarding", "err", err)
			return storeFailed(err)
		}
	}
	if len(keep) > 0 {
		if err := s.srv.Deliverer.Deliver(s.ctx, body, keep); err != nil {
			log.Error("message not delivered: store", "err", err, "size", body.Size)
			return storeFailed(err)
		}
	}
	for _, p := range forwards {
		// Before the 250, like the remote recipients: an account that
		// keeps no copy has its message only in the queue.
		if err := s.srv.Forward.Send(s.ctx, body, tx.from, p, log); err != nil {
			log.Error("message not forwarded", "err", err, "account", p.Account, "local_copies", len(keep))
			return storeFailed(err)
		}
	}
	if len(tx.remote) > 0 {
		// After the local copies: the queue has the rest before the 250.
		env := queue.Envelope{
			ID: id, MsgID: msgid, From: tx.from, Recipients: tx.remote, EnvID: tx.envid, Ret: tx.ret,
			SMTPUTF8: tx.utf8, Has8bit: tx.body8bit, RequireTLS: tx.requireTLS,
		}
		if acc != nil && s.srv.Mode == ModeSubmission {
			env.Sign = true
			env.Account = acc.Address
		}
		if _, err := s.srv.Queue.Add(s.ctx, body, env); err != nil {
			// A retry by the client duplicates the local copies, if
			// any; better than losing the remote ones.
			log.Error("message not queued", "err", err, "size", body.Size, "local_copies", len(keep))
			return storeFailed(err)
		}
	}
	if len(tx.notify) > 0 && len(tx.targets) > 0 && s.srv.Queue != nil {
		// RFC 3461 §6.2: the final delivery is ours to report. The
		// message is delivered whatever happens here: a failure is
		// logged, not answered.
		env := queue.Envelope{From: tx.from, EnvID: tx.envid, Ret: tx.ret, Has8bit: tx.body8bit, SMTPUTF8: tx.utf8}
		if err := s.srv.Queue.NotifyDelivered(s.ctx, body, env, tx.notify); err != nil {
			log.Error("delivered DSN not sent", "err", err, "rcpts", len(tx.notify))
		}
	}
	if len(tx.targets) > 0 && s.srv.AutoReply != nil {
		// After the message is safe: a reply is never a reason to
		// refuse or retry it (RFC 3834 §2, the vacation package doc).
		s.srv.AutoReply.Reply(s.ctx, body, tx.from, tx.targets, log)
	}
	s.conn.countMessage()
	// The operator's line: the account, when authenticated, comes with
	// the session's logger.
	log.Info("message received", "event", eventlog.Received, "msgid", msgid, "from", tx.from, "rcpts", tx.rcpts, "mailboxes", len(keep), "queued", len(tx.remote), "forwarded", len(forwards),
		"size", size, "stored_size", body.Size, "tls", s.tlsVersion(), "chunking", isBDAT)
	if len(keep) > 0 {
		log.Info("message delivered", "event", eventlog.Delivered, "msgid", msgid, "from", tx.from, "rcpts", tx.local, "mailboxes", len(keep))
	}
	if o := s.srv.Observer; o != nil {
		o.MessageAccepted(len(keep), len(tx.remote) > 0 || len(forwards) > 0, time.Since(bodyDone))
	}
	// RFC 5321 §4.2.5: this reply means the message is safe.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
}

// copyBody copies the message from r into w, counting what it reads. After
// a write error it keeps reading, to the end, so the reply still comes
// after the message. werr is a write error from before.
func copyBody(w io.Writer, r io.Reader, werr error, buf []byte) (n int64, rerr, _ error) {
	for {
		nr, err := r.Read(buf)
		if nr > 0 {
			n += int64(nr)
			if werr == nil {
				_, werr = w.Write(buf[:nr])
			}
		}
		if err == io.EOF {
			return n, nil, werr
		}
		if err != nil {
			return n, err, werr
		}
	}
}

// drain reads r to its end.
func drain(r io.Reader) { io.Copy(io.Discard, r) }

// bodyMessageID returns the Message-ID of body for the event log.
func bodyMessageID(body *blob.Temp) string {
	if body.InMemory() {
		return eventlog.MessageIDOf(body.Data)
	}
	r, err := body.NewReader()
	if err != nil {
		return ""
	}
	defer r.Close()
	return eventlog.MessageID(r, body.Size)
}
