package smtpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/msgauth"
	"github.com/jodmai/jodmai/internal/store"
)

// msgAuth is the inbound authentication (SPF, DKIM, DMARC) of one message
// on MX. Its methods work on nil, which means no checks (submission, or no
// Verifier).
//
// The flow costs one fsync, as without checks: for a trusted client the
// field "Authentication-Results: <host>; none" is known before the message
// and written with the trace fields. Otherwise the message is spooled as
// received, without fsync; once verified, the durable body is written:
// trace fields, our Authentication-Results, then the spooled message
// without forged Authentication-Results fields (its body copied in the
// kernel), and fsynced once.
type msgAuth struct {
	check *msgauth.Check
	spool bool
}

// startMsgAuth begins the checks at the start of DATA/BDAT, so the SPF
// lookups overlap the transfer of the message.
func (s *session) startMsgAuth(tx transaction) *msgAuth {
	v := s.srv.Verifier
	if v == nil || s.srv.Mode != ModeMX {
		return nil
	}
	in := msgauth.Input{HELO: tx.helo, MailFrom: tx.from, SMTPUTF8: tx.utf8}
	if ip, ok := remoteIP(s.remote); ok {
		in.IP = net.IP(ip.AsSlice())
	}
	c := v.Start(s.ctx, in)
	return &msgAuth{check: c, spool: !c.Trusted()}
}

// close ends lookups still running.
func (m *msgAuth) close() {
	if m != nil {
		m.check.Close()
	}
}

// prefix returns what is written before the message as it arrives: the
// trace fields, with the Authentication-Results field when it is known
// already; nothing when the message is spooled for checking.
func (m *msgAuth) prefix(trace string) string {
	switch {
	case m == nil:
		return trace
	case m.spool:
		return ""
	}
	return trace + m.check.Finish(context.Background(), nil, 0).Header
}

// finishBody finishes the received body: durable, or a scratch spool.
func (m *msgAuth) finishBody(w *blob.Writer) (*blob.Temp, error) {
	if m != nil && m.spool {
		return w.FinishScratch()
	}
	return w.Finish()
}

// authenticate verifies a spooled message and returns the durable body to
// deliver, with trace and Authentication-Results fields, and the targets
// (the recipients' Junk mailboxes for a quarantined message). The spool is
// then removed. On error (the reply) it returns the spool itself, for the
// caller to remove. Without spooling it returns body and targets as they
// are.
func (s *session) authenticate(m *msgAuth, body *blob.Temp, trace string, tx transaction, log *slog.Logger) (*blob.Temp, []store.Target, error) {
	if m == nil || !m.spool {
		return body, tx.targets, nil
	}
	// NewReader, not Open: a memory spool is read where it is.
	f, err := body.NewReader()
	if err != nil {
		log.Error("message not stored: open spool", "err", err)
		return body, nil, storeFailed(err)
	}
	defer f.Close()
	vd := m.check.Finish(s.ctx, f, body.Size)
	targets := tx.targets
	switch vd.Action {
	case msgauth.Reject:
		// RFC 7489 §6.7, §10.3: refuse after DATA, nothing stored.
		log.Info("message refused: DMARC policy", "event", eventlog.Rejected, "from", tx.from, "rcpts", tx.rcpts, "code", 550, "from_domain", vd.FromDomain,
			"ip", ipString(s.remote), "reason", vd.Reason)
		return body, nil, reply(550, 5, 7, 1, "Message rejected: "+vd.Reason)
	case msgauth.Quarantine:
		log.Info("message quarantined: DMARC policy", "from", tx.from, "from_domain", vd.FromDomain,
			"ip", ipString(s.remote), "reason", vd.Reason)
		targets = s.junkTargets(targets, log)
	}
	final, err := s.writeAuthenticated(f, body.Size, trace+vd.Header)
	if err != nil {
		log.Error("message not stored: write body", "err", err)
		return body, nil, storeFailed(err)
	}
	if err := body.Remove(); err != nil {
		log.Warn("remove spooled body", "err", err)
	}
	return final, targets, nil
}

// writeAuthenticated writes the durable body: prefix, then the spooled
// message f (size bytes) without forged Authentication-Results fields.
func (s *session) writeAuthenticated(f blob.Reader, size int64, prefix string) (*blob.Temp, error) {
	w, err := s.srv.Deliverer.Store.NewBody()
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	_, err = bw.WriteString(prefix)
	var n int64
	if err == nil {
		n, err = msgauth.StripResults(bw, f, size, s.srv.Verifier.Hostname)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = f.Seek(n, io.SeekStart)
	}
	if err == nil {
		_, err = w.ReadFrom(f)
	}
	if err != nil {
		w.Abort()
		return nil, err
	}
	return w.Finish()
}

// junkTargets moves targets to each account's Junk mailbox: the one with
// the \Junk attribute, else one named Junk, else a new Junk. When none can
// be had the message stays in the INBOX, with a warning.
func (s *session) junkTargets(targets []store.Target, log *slog.Logger) []store.Target {
	out := make([]store.Target, len(targets))
	for i, t := range targets {
		out[i] = t
		name, err := s.junkMailbox(t.AccountID)
		if err != nil {
			log.Warn("quarantine: no Junk mailbox, delivering to INBOX", "account_id", t.AccountID, "err", err)
			continue
		}
		out[i].Mailbox = name
	}
	return out
}

func (s *session) junkMailbox(accountID int64) (string, error) {
	ctx := s.ctx
	a, err := s.srv.Deliverer.Store.Account(ctx, accountID)
	if err != nil {
		return "", err
	}
	defer a.Release()
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		return "", err
	}
	named := ""
	for _, mb := range mbs {
		if mb.SpecialUse == `\Junk` {
			return mb.Name, nil
		}
		if strings.EqualFold(mb.Name, "Junk") {
			named = mb.Name
		}
	}
	if named != "" {
		return named, nil
	}
	mb, err := a.CreateMailbox(ctx, "Junk", `\Junk`)
	if err != nil {
		// Another delivery may have just made it.
		if mb, err2 := a.Mailbox(ctx, "Junk"); err2 == nil {
			return mb.Name, nil
		}
		return "", fmt.Errorf("create Junk: %w", err)
	}
	log := s.logger()
	log.Info("quarantine: created Junk mailbox", "account_id", accountID)
	return mb.Name, nil
}

func ipString(a net.Addr) string {
	if ip, ok := remoteIP(a); ok {
		return ip.String()
	}
	return a.String()
}
