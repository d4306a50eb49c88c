// Package vacation sends the auto-replies ("I am away") of accounts that
// turned theirs on (userdb.Vacation), following RFC 3834.
//
// Invariants:
//   - A reply never fails or delays the delivery it answers beyond one
//     queue Add: Responder.Reply is called after the message is durable in
//     the mailboxes, and logs its failures instead of returning them.
//   - A reply is mail like any other: it is handed to the outbound queue
//     (queue.Queue.Add, durable when it returns), or for a local sender
//     filed by deliver.Deliverer.Deliver. There is no other write path.
//   - At most one reply per account and sender per userdb.VacationPeriod
//     (userdb.DB.VacationReplyDue records it before the reply is queued:
//     a crash between the two loses that reply, never sends two).
//   - No reply to what RFC 3834 §2 says must not get one (Judge): a null
//     reverse path, automatic senders, auto-submitted, bulk and list mail,
//     and mail not addressed to the account in To or Cc.
//   - The reply has a null reverse path (RFC 3834 §3.3), Auto-Submitted:
//     auto-replied (§3.1.7), and In-Reply-To/References (§3.1.5).
package vacation

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// Enqueuer takes a message for remote delivery: *queue.Queue.
type Enqueuer interface {
	Add(ctx context.Context, body *blob.Temp, env queue.Envelope) (string, error)
}

// Responder sends auto-replies. Its exported fields are its
// configuration.
type Responder struct {
	// Deliverer knows the accounts (Users) and files replies to local
	// senders. Required.
	Deliverer *deliver.Deliverer
	// Queue takes replies to remote senders. Required.
	Queue Enqueuer
	// Hostname makes the replies' Message-IDs.
	Hostname string
	// Log receives what was sent and what failed; nil discards.
	Log *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time

	mu      sync.Mutex
	enabled map[int64]bool // accounts with a vacation on, cached
	gen     uint64         // Users.Generation when enabled was read
	expires time.Time
}

// enabledTTL bounds how long a change made by another process (the
// admin command) takes to be seen.
const enabledTTL = 5 * time.Second

// maxHeader is how much of a message's header Reply reads.
const maxHeader = 64 << 10

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Responder) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// anyEnabled returns which of targets have a vacation on; usually none,
// from the cache.
func (r *Responder) anyEnabled(ctx context.Context, targets []store.Target) ([]int64, error) {
	users := r.Deliverer.Users
	gen := users.Generation()
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.enabled == nil || r.gen != gen || !now.Before(r.expires) {
		m, err := users.VacationAccounts(ctx)
		if err != nil {
			return nil, err
		}
		r.enabled, r.gen, r.expires = m, gen, now.Add(enabledTTL)
	}
	var out []int64
	for _, t := range targets {
		if r.enabled[t.AccountID] {
			out = append(out, t.AccountID)
		}
	}
	return out, nil
}

// Reply sends the auto-replies that the message body, from reverse path
// from and just delivered to targets, calls for. It returns nothing:
// the message is delivered whatever happens here; failures are logged
// on log (the delivering session's logger, with its qid).
func (r *Responder) Reply(ctx context.Context, body *blob.Temp, from string, targets []store.Target, log *slog.Logger) {
	if log == nil {
		log = r.log()
	}
	if from == "" || len(targets) == 0 {
		return // RFC 3834 §2: never to a null reverse path
	}
	ids, err := r.anyEnabled(ctx, targets)
	if err != nil {
		log.Error("vacation: list accounts", "err", err)
		return
	}
	if len(ids) == 0 {
		return
	}
	head, err := readHeader(body)
	if err != nil {
		log.Info("vacation: no reply, unreadable header", "err", err)
		return
	}
	for _, id := range ids {
		if err := r.replyFor(ctx, id, head, from, log); err != nil {
			log.Error("vacation: reply not sent", "account_id", id, "to", from, "err", err)
		}
	}
}

func (r *Responder) replyFor(ctx context.Context, accountID int64, head textproto.MIMEHeader, from string, log *slog.Logger) error {
	users := r.Deliverer.Users
	v, err := users.Vacation(ctx, accountID)
	if err != nil {
		return err
	}
	now := r.now()
	if !v.Active(now) {
		return nil
	}
	acc, err := users.AccountByID(ctx, accountID)
	if err != nil {
		return err
	}
	aliases, err := users.AliasesTargeting(ctx, acc.Address)
	if err != nil {
		return err
	}
	if reason := Judge(head, from, append([]string{acc.Address}, aliases...)); reason != "" {
		log.Info("vacation: no reply", "account", acc.Address, "to", from, "reason", reason)
		return nil
	}
	due, err := users.VacationReplyDue(ctx, accountID, from, now)
	if err != nil {
		return err
	}
	if !due {
		log.Info("vacation: no reply", "account", acc.Address, "to", from, "reason", "already replied")
		return nil
	}
	id := blob.NewID()
	msg := Compose(acc.Address, from, v, head, now, id+"@"+r.Hostname)
	body, err := r.newBody(msg)
	if err != nil {
		return err
	}
	defer body.Remove()
	qid, err := r.send(ctx, body, from, acc.Address, id)
	if err != nil {
		return err
	}
	log.Info("vacation: reply sent", "account", acc.Address, "to", from, "reply_qid", qid)
	return nil
}

// newBody makes msg a body the store and the queue can make durable.
func (r *Responder) newBody(msg []byte) (*blob.Temp, error) {
	w := r.Deliverer.Store.NewBodyBuffer(nil)
	if _, err := w.Write(msg); err != nil {
		w.Abort()
		return nil, err
	}
	return w.Finish()
}

// send hands the reply to the queue, or to the local mailboxes when the
// sender is one of ours. It returns the queue id (or id).
func (r *Responder) send(ctx context.Context, body *blob.Temp, to, account, id string) (string, error) {
	res, err := r.Deliverer.Resolve(ctx, to)
	switch {
	case errors.Is(err, deliver.ErrNotLocal):
		// RFC 6531: a reply to an internationalized address needs
		// SMTPUTF8 at the next hop.
		return r.Queue.Add(ctx, body, queue.Envelope{ID: id, Recipients: []remote.Recipient{{Addr: to}}, Sign: true, Account: account, SMTPUTF8: !isASCII(to)})
	case err != nil:
		return "", fmt.Errorf("resolve %s: %w", to, err)
	}
	if len(res.Local) > 0 {
		if err := r.Deliverer.Deliver(ctx, body, res.Local); err != nil {
			return "", err
		}
	}
	if len(res.Remote) > 0 {
		var rcpts []remote.Recipient
		for _, a := range res.Remote {
			rcpts = append(rcpts, remote.Recipient{Addr: a})
		}
		return r.Queue.Add(ctx, body, queue.Envelope{ID: id, Recipients: rcpts, Sign: true, Account: account, SMTPUTF8: !isASCII(to)})
	}
	return id, nil
}

// readHeader parses the header of body (its first maxHeader bytes).
func readHeader(body *blob.Temp) (textproto.MIMEHeader, error) {
	var head []byte
	if body.InMemory() {
		head = body.Data[:min(len(body.Data), maxHeader)]
	} else {
		rd, err := body.NewReader()
		if err != nil {
			return nil, err
		}
		defer rd.Close()
		head = make([]byte, min(body.Size, maxHeader))
		n, err := rd.ReadAt(head, 0)
		if err != nil && err != io.EOF {
			return nil, err
		}
		head = head[:n]
	}
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i+4]
	} else {
		head = append(head[:len(head):len(head)], "\r\n\r\n"...)
	}
	return textproto.NewReader(bufio.NewReader(bytes.NewReader(head))).ReadMIMEHeader()
}

// automaticLocals are the local parts of senders that are programs, not
// people (RFC 3834 §2: "MAILER-DAEMON", "LISTSERV" and the like).
var automaticLocals = map[string]bool{
	"mailer-daemon": true, "postmaster": true, "listserv": true, "majordomo": true,
	"noreply": true, "no-reply": true, "donotreply": true, "do-not-reply": true, "nobody": true,
}

// Judge returns why a message with header head, from reverse path from,
// must not get an auto-reply from an account known by addrs (its address
// and aliases), or "" when it may.
func Judge(head textproto.MIMEHeader, from string, addrs []string) string {
	local, _, ok := strings.Cut(strings.ToLower(from), "@")
	switch {
	case from == "":
		return "null reverse path"
	case !ok:
		return "reverse path without a domain"
	case automaticLocals[local] || strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") ||
		strings.HasSuffix(local, "-owner") || strings.Contains(local, "-bounces") || strings.HasPrefix(local, "bounce"):
		// RFC 3834 §2: owner-*, *-request, MAILER-DAEMON.
		return "automatic sender"
	}
	for _, a := range addrs {
		if strings.EqualFold(a, from) {
			return "sent by the account"
		}
	}
	// RFC 3834 §2: Auto-Submitted other than "no" (§5: comments and
	// parameters after the keyword).
	if vals, ok := head["Auto-Submitted"]; ok {
		for _, v := range vals {
			kw, _, _ := strings.Cut(v, ";")
			kw, _, _ = strings.Cut(kw, "(")
			if !strings.EqualFold(strings.TrimSpace(kw), "no") {
				return "auto-submitted"
			}
		}
	}
	switch strings.ToLower(strings.TrimSpace(head.Get("Precedence"))) {
	case "bulk", "list", "junk":
		return "precedence " + strings.ToLower(strings.TrimSpace(head.Get("Precedence")))
	}
	for k := range head {
		if strings.HasPrefix(k, "List-") {
			return "list message"
		}
	}
	// Microsoft's way of saying the same.
	if s := strings.ToLower(head.Get("X-Auto-Response-Suppress")); strings.Contains(s, "oof") || strings.Contains(s, "all") {
		return "auto-response suppressed"
	}
	// A spam verdict of a filter before us (jodmai has none of its own).
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(head.Get("X-Spam-Flag"))), "yes") ||
		strings.HasPrefix(strings.ToLower(strings.TrimSpace(head.Get("X-Spam-Status"))), "yes") {
		return "spam"
	}
	// RFC 3834 §2: only to mail that names the account as a recipient
	// (not Bcc, not a list that expanded to it).
	for _, field := range []string{"To", "Cc"} {
		for _, v := range head[field] {
			for _, a := range message.ParseAddressList(v) {
				if a.Mailbox == "" || a.Host == "" {
					continue
				}
				if addressedTo(a.Mailbox, a.Host, addrs) {
					return ""
				}
			}
		}
	}
	return "account not in To or Cc"
}

// addressedTo reports whether local@host is one of addrs, ignoring a
// +tag.
func addressedTo(local, host string, addrs []string) bool {
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	for _, a := range addrs {
		if strings.EqualFold(a, local+"@"+host) {
			return true
		}
	}
	return false
}

// maxReferences bounds the References field of a reply.
const maxReferences = 900

// Compose writes the auto-reply from account to sender for a message with
// header head: the message, with a leading "Return-Path: <>" (the queue
// skips it; local delivery keeps it), CRLF line ends.
func Compose(account, to string, v userdb.Vacation, head textproto.MIMEHeader, now time.Time, messageID string) []byte {
	subject := v.Subject
	if subject == "" {
		orig := strings.TrimSpace(message.DecodeHeader(unfold(head.Get("Subject"))))
		// RFC 3834 §3.1.5: "Auto:" and the original subject.
		subject = "Auto: " + orig
	}
	if len(subject) > 300 {
		subject = subject[:300]
	}
	var b bytes.Buffer
	w := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	w("Return-Path", "<>")
	w("From", "<"+account+">")
	w("To", "<"+to+">")
	w("Subject", mime.QEncoding.Encode("utf-8", subject))
	w("Date", now.Format(time.RFC1123Z))
	w("Message-ID", "<"+messageID+">")
	if id := strings.TrimSpace(unfold(head.Get("Message-Id"))); id != "" && len(id) < 500 {
		// RFC 3834 §3.1.5, RFC 5322 §3.6.4.
		w("In-Reply-To", id)
		refs := strings.Join(strings.Fields(unfold(head.Get("References"))), " ")
		if refs == "" {
			refs = strings.Join(strings.Fields(unfold(head.Get("In-Reply-To"))), " ")
		}
		refs = strings.TrimSpace(refs + " " + id)
		for len(refs) > maxReferences {
			// Keep the newest: drop the oldest ids.
			_, rest, ok := strings.Cut(refs, " ")
			if !ok {
				break
			}
			refs = rest
		}
		w("References", refs)
	}
	w("Auto-Submitted", "auto-replied") // RFC 3834 §3.1.7
	w("X-Auto-Response-Suppress", "All")
	w("MIME-Version", "1.0")
	w("Content-Type", "text/plain; charset=utf-8")
	w("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	text := strings.ReplaceAll(strings.ReplaceAll(v.Body, "\r\n", "\n"), "\n", "\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(text))
	qp.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// unfold joins a folded header value.
func unfold(s string) string {
	return strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(s)
}
