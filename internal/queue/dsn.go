package queue

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/userdb"
)

// noticeRow is a recipient a DSN is owed for.
type noticeRow struct {
	id                   int64
	addr, notify, orcpt  string
	state, code          int
	enhanced, text, host string
	lastAttempt          time.Time
	expired              bool
	notice               string // failed, delayed, relayed, delivered
}

// maxReturnedBody caps the original message returned whole (RET=FULL);
// a bigger one is returned as its header only.
const maxReturnedBody = 10 << 20

// sendOwedNotices sends the DSNs still owed (a failure or a crash right
// after an attempt) and removes finished messages left behind.
func (q *Queue) sendOwedNotices(ctx context.Context) {
	rows, err := q.db.R.QueryContext(ctx, `SELECT DISTINCT msg FROM rcpt WHERE notice != ''
		UNION SELECT id FROM msg m WHERE NOT EXISTS (SELECT 1 FROM rcpt r WHERE r.msg = m.id AND (r.state = 0 OR r.notice != ''))`)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("queue: owed notices", "err", err)
		}
		return
	}
	var ids []string
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	for _, id := range ids {
		if err := q.notices(ctx, id); err != nil && ctx.Err() == nil {
			q.log.Error("queue: send notice", "id", id, "err", err)
		}
	}
}

// notices sends the DSN owed for message id, if any, then removes the
// message if nothing is left to do for it.
func (q *Queue) notices(ctx context.Context, id string) error {
	q.noticeMu.Lock()
	defer q.noticeMu.Unlock()
	m, err := q.loadMsg(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rows, err := q.db.R.QueryContext(ctx, `SELECT id, addr, notify, orcpt, state, code, enhanced, text, host, last_attempt, notice, expired
		FROM rcpt WHERE msg = ? AND notice != '' ORDER BY id`, id)
	if err != nil {
		return fmt.Errorf("owed notices: %w", err)
	}
	var owed []noticeRow
	for rows.Next() {
		var n noticeRow
		var last int64
		if err := rows.Scan(&n.id, &n.addr, &n.notify, &n.orcpt, &n.state, &n.code, &n.enhanced, &n.text, &n.host, &last, &n.notice, &n.expired); err != nil {
			rows.Close()
			return fmt.Errorf("owed notices: %w", err)
		}
		n.lastAttempt = time.UnixMilli(last)
		owed = append(owed, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("owed notices: %w", err)
	}
	if len(owed) > 0 {
		// Never a DSN about a message with a null sender (RFC 3461 §6.2,
		// RFC 5321 §4.5.5); record never sets one, this is defence.
		if m.sender != "" {
			if body, closeBody, err := q.openBody(m); err == nil {
				m.msgid = eventlog.MessageID(io.NewSectionReader(body, m.offset, m.size-m.offset), m.size-m.offset)
				closeBody()
			}
			raw, err := q.composeDSN(m, owed)
			if err != nil {
				return err
			}
			if err := q.sendDSN(ctx, m, raw); err != nil {
				return err
			}
		}
		err := q.db.Tx(ctx, func(tx *sql.Tx) error {
			for _, n := range owed {
				// Only the notice sent: a later result may have replaced it.
				if _, err := tx.ExecContext(ctx, `UPDATE rcpt SET notice = '' WHERE id = ? AND notice = ?`, n.id, n.notice); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clear notices: %w", err)
		}
	}
	return q.removeIfDone(ctx, id)
}

// removeIfDone deletes message id when no recipient is pending and no DSN
// is owed.
func (q *Queue) removeIfDone(ctx context.Context, id string) error {
	removed := false
	err := q.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rcpt WHERE msg = ? AND (state = 0 OR notice != '')`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rcpt WHERE msg = ?`, id); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM msg WHERE id = ?`, id)
		if err != nil {
			return err
		}
		k, _ := r.RowsAffected()
		removed = k == 1
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove finished message %s: %w", id, err)
	}
	if removed {
		q.bodies.Remove(id)
		q.log.Debug("queue: message done", "id", id)
	}
	return nil
}

// sendDSN files raw for the sender of m: into the mailboxes of a local
// sender, or queued with a null sender for a remote one. It returns when
// the DSN is durable.
func (q *Queue) sendDSN(ctx context.Context, m msgRow, raw []byte) error {
	var res deliver.Resolution
	var remoteAddrs []string
	if q.opts.Local != nil {
		var err error
		res, err = q.opts.Local.Resolve(ctx, m.sender)
		switch {
		case err == nil:
			remoteAddrs = res.Remote
		case errors.Is(err, deliver.ErrNotLocal):
			remoteAddrs = []string{m.sender}
		case errors.Is(err, deliver.ErrNoSuchUser), errors.Is(err, deliver.ErrAliasLoop), errors.Is(err, userdb.ErrInvalid):
			q.log.Warn("bounce dropped: the sender is not a local address any more", "id", m.id, "from", m.sender, "err", err)
			return nil
		default:
			return fmt.Errorf("resolve bounce recipient: %w", err)
		}
	} else {
		remoteAddrs = []string{m.sender}
	}
	w, err := blob.Create(q.tmp)
	if err != nil {
		return err
	}
	// A local copy carries a Return-Path as smtpd's do; Add skips it.
	if _, err := w.Write(append([]byte("Return-Path: <>\r\n"), raw...)); err != nil {
		w.Abort()
		return err
	}
	tmp, err := w.Finish()
	if err != nil {
		return err
	}
	defer tmp.Remove()
	if len(res.Local) > 0 {
		if err := q.opts.Local.Deliver(ctx, tmp, res.Local); err != nil {
			return fmt.Errorf("deliver bounce: %w", err)
		}
		// The mail event of the notice: its own Message-ID, under the
		// queue id of the message it reports on (whose story it ends).
		q.log.Info("bounce delivered", "event", eventlog.Delivered, "qid", m.id, "msgid", eventlog.MessageIDOf(raw),
			"from", "", "rcpts", []string{m.sender}, "mailboxes", len(res.Local), "dsn", true, "about_msgid", m.msgid)
		if q.opts.Observer != nil {
			q.opts.Observer.Filed(len(res.Local))
		}
	}
	if len(remoteAddrs) > 0 {
		env := Envelope{From: "", Sign: true}
		for _, a := range remoteAddrs {
			env.Recipients = append(env.Recipients, remote.Recipient{Addr: a, Notify: "NEVER"})
			if !isASCII(a) {
				env.SMTPUTF8 = true
			}
		}
		id, err := q.Add(ctx, tmp, env)
		if err != nil {
			return fmt.Errorf("queue bounce: %w", err)
		}
		q.log.Info("bounce queued", "id", m.id, "to", m.sender, "bounce_id", id)
	}
	return nil
}

// composeDSN writes an RFC 3464 delivery status notification for owed.
func (q *Queue) composeDSN(m msgRow, owed []noticeRow) ([]byte, error) {
	host := q.opts.Hostname
	now := q.now()
	var failed, delayed, relayed, delivered int
	for _, n := range owed {
		switch n.notice {
		case "failed":
			failed++
		case "delayed":
			delayed++
		case "delivered":
			delivered++
		default:
			relayed++
		}
	}
	subject := "Successful Mail Delivery Report"
	switch {
	case failed > 0:
		subject = "Undelivered Mail Returned to Sender"
	case delayed > 0:
		subject = "Delayed Mail (still being retried)"
	}
	utf8 := !isASCII(m.sender)
	for _, n := range owed {
		if !isASCII(n.addr) || !isASCII(n.orcpt) || !isASCII(n.text) {
			utf8 = true
		}
	}
	boundary := "=_" + blob.NewID()
	var b bytes.Buffer
	crlf := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	crlf("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	crlf("To: <%s>", m.sender)
	crlf("Subject: %s", subject)
	crlf("Date: %s", now.Format(time.RFC1123Z))
	crlf("Message-ID: <%s.dsn@%s>", blob.NewID(), host)
	crlf("Auto-Submitted: auto-replied") // RFC 3834 §5
	crlf("MIME-Version: 1.0")
	crlf("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"", boundary)
	crlf("")
	crlf("This is a MIME-encapsulated message.")
	crlf("")

	// The human-readable part (RFC 3462 §2: first).
	crlf("--%s", boundary)
	crlf("Content-Type: text/plain; charset=utf-8")
	if utf8 {
		crlf("Content-Transfer-Encoding: 8bit")
	}
	crlf("")
	crlf("This is the mail system at host %s.", host)
	crlf("")
	switch {
	case failed > 0:
		crlf("Your message could not be delivered to one or more recipients.")
		crlf("It is attached below.")
	case delayed > 0:
		crlf("Your message has not been delivered yet to one or more recipients.")
		crlf("The mail system will keep trying until %s;", m.created.Add(q.policy.MaxAge).UTC().Format(time.RFC1123Z))
		crlf("you do not need to send it again.")
	case relayed == 0 && delivered > 0:
		crlf("Your message was delivered to the mailboxes of the following recipients.")
	default:
		crlf("Your message was delivered to the following recipients' mail servers.")
	}
	crlf("")
	for _, n := range owed {
		line := fmt.Sprintf("<%s>: %s", n.addr, actionOf(n))
		if d := describe(n); d != "" {
			line += ": " + d
		}
		crlf("%s", line)
	}
	crlf("")

	// The machine-readable part (RFC 3464 §2).
	crlf("--%s", boundary)
	if utf8 {
		crlf("Content-Type: message/global-delivery-status") // RFC 6533 §6
	} else {
		crlf("Content-Type: message/delivery-status")
	}
	crlf("")
	crlf("Reporting-MTA: dns; %s", host)
	if m.envid != "" {
		crlf("Original-Envelope-Id: %s", oneLine(m.envid))
	}
	crlf("Arrival-Date: %s", m.created.Format(time.RFC1123Z))
	for _, n := range owed {
		crlf("")
		addrType := "rfc822"
		if !isASCII(n.addr) {
			addrType = "utf-8"
		}
		crlf("Final-Recipient: %s; %s", addrType, n.addr)
		if n.orcpt != "" {
			if t, a, err := ParseORcpt(n.orcpt); err == nil {
				crlf("Original-Recipient: %s; %s", t, a)
			}
		}
		crlf("Action: %s", actionOf(n))
		crlf("Status: %s", statusOf(n))
		if n.host != "" {
			crlf("Remote-MTA: dns; %s", oneLine(n.host))
			if n.code > 0 {
				crlf("Diagnostic-Code: smtp; %s", oneLine(replyText(n.code, n.enhanced, n.text)))
			}
		} else if n.text != "" {
			crlf("Diagnostic-Code: X-jodmai; %s", oneLine(n.text))
		}
		if !n.lastAttempt.IsZero() && n.lastAttempt.Unix() > 0 {
			crlf("Last-Attempt-Date: %s", n.lastAttempt.Format(time.RFC1123Z))
		}
		if n.notice == "delayed" {
			crlf("Will-Retry-Until: %s", m.created.Add(q.policy.MaxAge).Format(time.RFC1123Z))
		}
	}
	crlf("")

	// The original message or its header (RFC 3461 §4.3 RET).
	crlf("--%s", boundary)
	f, closeBody, err := q.openBody(m)
	if err != nil {
		return nil, err
	}
	defer closeBody()
	orig := io.NewSectionReader(f, m.offset, m.size-m.offset)
	full := m.ret == "FULL" && orig.Size() <= maxReturnedBody
	switch {
	case full && utf8:
		crlf("Content-Type: message/global")
	case full:
		crlf("Content-Type: message/rfc822")
	case utf8:
		crlf("Content-Type: message/global-headers")
	default:
		crlf("Content-Type: text/rfc822-headers")
	}
	if m.has8bit {
		crlf("Content-Transfer-Encoding: 8bit")
	}
	crlf("")
	if full {
		if _, err := io.Copy(&b, orig); err != nil {
			return nil, fmt.Errorf("read original: %w", err)
		}
		if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	} else if err := copyHeader(&b, orig); err != nil {
		return nil, fmt.Errorf("read original: %w", err)
	}
	// RFC 2046 §5.1.1: the CRLF before a delimiter belongs to it.
	crlf("")
	crlf("--%s--", boundary)
	return b.Bytes(), nil
}

// copyHeader copies the header block of r (up to and including its blank
// line, or all of r if it has none) to w.
func copyHeader(w *bytes.Buffer, r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			w.Write(line)
			if line[len(line)-1] != '\n' {
				w.WriteString("\r\n")
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				return nil
			}
		}
		if err == io.EOF {
			w.WriteString("\r\n")
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func actionOf(n noticeRow) string {
	switch n.notice {
	case "failed":
		return "failed"
	case "delayed":
		return "delayed"
	case "delivered":
		return "delivered"
	}
	return "relayed"
}

// statusOf is the RFC 3463 status code for the DSN's Status field.
func statusOf(n noticeRow) string {
	switch n.notice {
	case "relayed", "delivered":
		return "2.0.0"
	case "delayed":
		if validStatus(n.enhanced, '4') {
			return n.enhanced
		}
		return "4.0.0"
	}
	if n.expired {
		// RFC 3463: delivery time expired.
		return "4.4.7"
	}
	if validStatus(n.enhanced, '5') {
		return n.enhanced
	}
	return "5.0.0"
}

func validStatus(s string, class byte) bool {
	if len(s) < 5 || s[0] != class || s[1] != '.' {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// describe is the human-readable reason for a recipient.
func describe(n noticeRow) string {
	var s string
	if n.code > 0 {
		s = replyText(n.code, n.enhanced, n.text)
	} else {
		s = n.text
	}
	if n.host != "" && s != "" {
		s = "host " + n.host + " said: " + s
	}
	if n.notice == "failed" && n.expired {
		s = "gave up: message too old; last error: " + s
	}
	return oneLine(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// replyText joins an SMTP reply's parts, skipping empty ones.
func replyText(code int, enhanced, text string) string {
	parts := []string{fmt.Sprint(code)}
	for _, p := range []string{enhanced, strings.TrimSpace(text)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}
