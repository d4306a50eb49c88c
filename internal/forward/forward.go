// Package forward sends the mail of accounts that forward it
// (userdb.Forward) on to their forwarding addresses.
//
// Invariants:
//   - A forwarded copy is handed to the outbound queue (queue.Queue.Add,
//     durable when it returns) before the delivery is answered, like any
//     remote recipient: smtpd answers 250 only after Send returned for
//     every forwarding account, and an error from Send is a 451. So an
//     account that keeps no copy loses nothing acknowledged: its message
//     is durable in the queue instead of the store (store package doc,
//     "Durability", and queue package doc). Local forwarding addresses
//     are filed with deliver.Deliverer.Deliver, without forwarding them
//     further.
//   - The envelope sender of a forwarded copy is the forwarding account
//     (not the original sender, whose SPF would fail at the next hop; a
//     null sender stays null): bounces of the forward go to the account's
//     owner. SRS is not implemented.
//   - Loops stop: each forwarded copy gets a Delivered-To field naming
//     the account; a message that already has one for the account, or
//     has maxHops of them, is not forwarded again but kept in the
//     account's mailbox. A message is never forwarded to its sender.
package forward

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/store"
)

// maxHops bounds the Delivered-To fields a forwarded message may carry.
const maxHops = 10

// maxHeader is how much of a message's header is read for Delivered-To.
const maxHeader = 64 << 10

// Enqueuer takes a message for remote delivery: *queue.Queue.
type Enqueuer interface {
	Add(ctx context.Context, body *blob.Temp, env queue.Envelope) (string, error)
}

// Forwarder forwards mail. Its exported fields are its configuration.
type Forwarder struct {
	// Deliverer knows the accounts and files copies for local forwarding
	// addresses. Required.
	Deliverer *deliver.Deliverer
	// Queue takes the forwarded copies. Required.
	Queue Enqueuer

	mu      sync.Mutex
	enabled map[int64]bool
	gen     uint64
	expires time.Time
}

const enabledTTL = 5 * time.Second

// Plan is the forwarding of one delivered message by one account.
type Plan struct {
	// Account is the forwarding account's address.
	Account string
	// AccountID is its id.
	AccountID int64
	// To are the addresses to forward to.
	To []string
}

// Split divides targets, the accounts a message from reverse path from
// with header head is for, into those that get a copy in their mailbox
// (keep) and the forwardings to make (plans). An account forwarding
// without keeping a copy is only in keep when its forwarding cannot
// happen (a loop, or only the sender to forward to): nothing is dropped.
func (f *Forwarder) Split(ctx context.Context, body *blob.Temp, from string, targets []store.Target, log *slog.Logger) (keep []store.Target, plans []Plan, err error) {
	ids, err := f.forwarding(ctx, targets)
	if err != nil || len(ids) == 0 {
		return targets, nil, err
	}
	var delivered []string
	head, herr := readHeader(body)
	if herr == nil {
		delivered = head["Delivered-To"]
	}
	users := f.Deliverer.Users
	for _, t := range targets {
		if !ids[t.AccountID] {
			keep = append(keep, t)
			continue
		}
		fw, err := users.Forward(ctx, t.AccountID)
		if err != nil {
			return nil, nil, err
		}
		acc, err := users.AccountByID(ctx, t.AccountID)
		if err != nil {
			return nil, nil, err
		}
		var to []string
		for _, a := range fw.To {
			if strings.EqualFold(a, from) { // never back to the sender
				continue
			}
			if _, err := f.Deliverer.Resolve(ctx, a); err != nil && !errors.Is(err, deliver.ErrNotLocal) {
				// A local address that went away (or a failed
				// lookup): without a usable address the message
				// stays here.
				log.Warn("forward: address not usable", "account", acc.Address, "to", a, "err", err)
				continue
			}
			to = append(to, a)
		}
		reason := ""
		switch {
		case herr != nil:
			reason = "unreadable header"
		case len(delivered) >= maxHops:
			reason = "too many hops"
		case hasAddress(delivered, acc.Address):
			reason = "loop: forwarded by this account before"
		case len(to) == 0:
			reason = "no usable address but the sender"
		}
		if reason != "" {
			log.Warn("forward: not forwarded, kept in the mailbox", "account", acc.Address, "reason", reason)
			keep = append(keep, t)
			continue
		}
		if fw.KeepCopy {
			keep = append(keep, t)
		}
		plans = append(plans, Plan{Account: acc.Address, AccountID: acc.ID, To: to})
	}
	return keep, plans, nil
}

// hasAddress reports whether one of the Delivered-To values is addr.
func hasAddress(values []string, addr string) bool {
	for _, v := range values {
		if strings.EqualFold(strings.Trim(strings.TrimSpace(v), "<>"), addr) {
			return true
		}
	}
	return false
}

// forwarding returns which of targets forward their mail; usually none,
// from the cache.
func (f *Forwarder) forwarding(ctx context.Context, targets []store.Target) (map[int64]bool, error) {
	users := f.Deliverer.Users
	gen := users.Generation()
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.enabled == nil || f.gen != gen || !now.Before(f.expires) {
		m, err := users.Forwards(ctx)
		if err != nil {
			return nil, err
		}
		f.enabled, f.gen, f.expires = m, gen, now.Add(enabledTTL)
	}
	out := map[int64]bool{}
	for _, t := range targets {
		if f.enabled[t.AccountID] {
			out[t.AccountID] = true
		}
	}
	return out, nil
}

// Send forwards body (received from reverse path from) as p says, and
// returns when every copy is durable: queued (queue.Queue.Add) or, for
// a local address, filed.
func (f *Forwarder) Send(ctx context.Context, body *blob.Temp, from string, p Plan, log *slog.Logger) error {
	fwd, err := f.withDeliveredTo(body, p.Account)
	if err != nil {
		return fmt.Errorf("forward for %s: %w", p.Account, err)
	}
	defer fwd.Remove()
	var rcpts []remote.Recipient
	for _, a := range p.To {
		res, err := f.Deliverer.Resolve(ctx, a)
		switch {
		case errors.Is(err, deliver.ErrNotLocal):
			rcpts = append(rcpts, remote.Recipient{Addr: a, ORcpt: queue.FormatORcpt("rfc822", p.Account)})
			continue
		case err != nil:
			// A local address that went away: the others still get
			// theirs, and the account's owner sees it in the log.
			log.Warn("forward: address not usable", "account", p.Account, "to", a, "err", err)
			continue
		}
		if len(res.Local) > 0 {
			if err := f.Deliverer.Deliver(ctx, fwd, res.Local); err != nil {
				return fmt.Errorf("forward for %s to %s: %w", p.Account, a, err)
			}
		}
		for _, r := range res.Remote {
			rcpts = append(rcpts, remote.Recipient{Addr: r, ORcpt: queue.FormatORcpt("rfc822", a)})
		}
	}
	if len(rcpts) == 0 {
		return nil
	}
	sender := p.Account
	if from == "" {
		sender = "" // a bounce stays a bounce (RFC 5321 §4.5.5)
	}
	qid, err := f.Queue.Add(ctx, fwd, queue.Envelope{From: sender, Recipients: rcpts, Account: p.Account})
	if err != nil {
		return fmt.Errorf("forward for %s: %w", p.Account, err)
	}
	log.Info("forwarded", "account", p.Account, "forward_qid", qid, "rcpts", len(rcpts))
	return nil
}

// withDeliveredTo returns body with "Delivered-To: account" after its
// leading Return-Path field (which the queue does not send), a new
// temporary body.
func (f *Forwarder) withDeliveredTo(body *blob.Temp, account string) (*blob.Temp, error) {
	rd, err := body.NewReader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	br := bufio.NewReader(io.NewSectionReader(rd, 0, body.Size))
	w := f.Deliverer.Store.NewBodyBuffer(nil)
	fail := func(err error) (*blob.Temp, error) { w.Abort(); return nil, err }
	// The Return-Path field, folded lines included, if it comes first.
	if b, _ := br.Peek(12); strings.EqualFold(string(b), "return-path:") {
		for {
			line, err := br.ReadString('\n')
			if _, werr := w.Write([]byte(line)); werr != nil {
				return fail(werr)
			}
			if err != nil {
				return fail(err)
			}
			if b, _ := br.Peek(1); len(b) == 0 || (b[0] != ' ' && b[0] != '\t') {
				break
			}
		}
	}
	if _, err := fmt.Fprintf(w, "Delivered-To: %s\r\n", account); err != nil {
		return fail(err)
	}
	if _, err := io.Copy(w, br); err != nil {
		return fail(err)
	}
	return w.Finish()
}

// readHeader parses the header of body (its first maxHeader bytes).
func readHeader(body *blob.Temp) (textproto.MIMEHeader, error) {
	rd, err := body.NewReader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	head := make([]byte, min(body.Size, maxHeader))
	n, err := rd.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	head = head[:n]
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i+4]
	} else {
		head = append(head, "\r\n\r\n"...)
	}
	return textproto.NewReader(bufio.NewReader(bytes.NewReader(head))).ReadMIMEHeader()
}
