package ua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jodmai/jodmai/internal/mailfile"
)

// FetchOptions tune a fetch.
type FetchOptions struct {
	// Keep leaves messages on the server (POP3: no DELE; IMAP: no expunge).
	Keep bool
	// Expunge (IMAP) marks every downloaded message \Deleted and expunges.
	Expunge bool
	// Mailboxes (IMAP) to download; default INBOX. INBOX goes to the
	// Maildir's root, others to Maildir++ folders.
	Mailboxes []string
	// Progress, when set, is called after each message.
	Progress func(done, total int, bytes int64)
	// AfterStore, when set, is called after each message is durable; an
	// error aborts the fetch at once, without QUIT (tests simulate a crash).
	AfterStore func(n int) error
}

// FetchResult sums up a fetch.
type FetchResult struct {
	Fetched int
	Bytes   int64
	Deleted int
}

func (r FetchResult) String() string {
	return fmt.Sprintf("fetched %d messages (%d bytes), deleted %d", r.Fetched, r.Bytes, r.Deleted)
}

const (
	pop3Ledger = "jodmai-pop3.state"
	imapLedger = "jodmai-imap.state"
)

// FetchPOP3 downloads every message over POP3 into the account's Maildir.
// Unless opts.Keep, each message is DELEted after it is durable and QUIT
// makes the server expunge them. Messages whose UIDL the ledger knows are
// not downloaded again (a --keep fetch, or a crash before QUIT).
func (acc *Account) FetchPOP3(ctx context.Context, password string, opts FetchOptions) (FetchResult, error) {
	var res FetchResult
	s := acc.POP3
	if s == nil {
		return res, errors.New("account has no pop3 server")
	}
	md, err := mailfile.OpenMaildir(acc.Maildir)
	if err != nil {
		return res, err
	}
	unlock, err := lockMaildir(md)
	if err != nil {
		return res, err
	}
	defer unlock()
	conn, tc, err := acc.dial(ctx, s)
	if err != nil {
		return res, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := NewPOP3Client(conn)
	if err != nil {
		conn.Close()
		return res, err
	}
	defer c.Close()
	caps, err := c.Capa()
	if err != nil {
		return res, err
	}
	if s.TLS == TLSStartTLS {
		if err := c.StartTLS(tc); err != nil {
			return res, err
		}
		if caps, err = c.Capa(); err != nil {
			return res, err
		}
	}
	switch {
	case acc.APOP && c.Timestamp != "":
		err = c.APOP(acc.Username, password)
	case hasWord(caps["SASL"], "PLAIN"):
		err = c.AuthPlain(acc.Username, password)
	default:
		err = c.User(acc.Username, password)
	}
	if err != nil {
		return res, err
	}
	msgs, err := c.List(true)
	if err != nil {
		// UIDL is optional (RFC 1939 §7); without it nothing is remembered.
		if opts.Keep {
			return res, fmt.Errorf("--keep needs UIDL: %w", err)
		}
		if msgs, err = c.List(false); err != nil {
			return res, err
		}
	}
	led, err := OpenLedger(filepath.Join(md.Path, pop3Ledger), md)
	if err != nil {
		return res, err
	}
	defer led.Close()
	// UIDLs are never reused, so those no longer on the server can go.
	present := map[string]bool{}
	for _, m := range msgs {
		present[m.UIDL] = true
	}
	if err := led.Retain(func(k string) bool { return present[k] }); err != nil {
		return res, err
	}
	for i, m := range msgs {
		if m.UIDL == "" || !led.Has(m.UIDL) {
			r, err := c.Retr(m.Num)
			if err != nil {
				return res, err
			}
			var n int64
			if m.UIDL != "" {
				n, err = led.Store(m.UIDL, r)
			} else {
				var t *mailfile.MaildirTmp
				if t, err = md.WriteTmp(r); err == nil {
					if err = t.Commit(); err == nil {
						n = t.Size
					}
				}
			}
			if err != nil {
				return res, err
			}
			res.Fetched++
			res.Bytes += n
			if opts.AfterStore != nil {
				if err := opts.AfterStore(res.Fetched); err != nil {
					return res, err
				}
			}
		}
		if !opts.Keep {
			if err := c.Dele(m.Num); err != nil {
				return res, err
			}
			res.Deleted++
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(msgs), res.Bytes)
		}
	}
	if err := c.Quit(); err != nil {
		return res, err
	}
	return res, nil
}

func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}

// mailboxMaildir is where a mailbox's messages live locally: INBOX in the
// root Maildir, others in Maildir++ folders ("Foo/Bar" in .Foo.Bar).
func mailboxMaildir(root *mailfile.Maildir, mbox string) (*mailfile.Maildir, error) {
	if strings.EqualFold(mbox, "INBOX") {
		return root, nil
	}
	return root.Folder(strings.ReplaceAll(mbox, "/", "."))
}

// imapSession opens the local Maildir under its lock and logs in over
// IMAP; ctx ending closes the connection. done releases both.
func (acc *Account) imapSession(ctx context.Context, password string) (root *mailfile.Maildir, c *imapclient.Client, done func(), err error) {
	root, err = mailfile.OpenMaildir(acc.Maildir)
	if err != nil {
		return nil, nil, nil, err
	}
	unlock, err := lockMaildir(root)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err = acc.DialIMAP(ctx, password)
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return root, c, func() {
		stop()
		c.Close()
		unlock()
	}, nil
}

// DialIMAP connects and logs in to the account's IMAP server.
func (acc *Account) DialIMAP(ctx context.Context, password string) (*imapclient.Client, error) {
	s := acc.IMAP
	if s == nil {
		return nil, errors.New("account has no imap server")
	}
	conn, tc, err := acc.dial(ctx, s)
	if err != nil {
		return nil, err
	}
	o := &imapclient.Options{TLSConfig: tc}
	var c *imapclient.Client
	if s.TLS == TLSStartTLS {
		if c, err = imapclient.NewStartTLS(conn, o); err != nil {
			conn.Close()
			return nil, fmt.Errorf("imap starttls: %w", err)
		}
	} else {
		c = imapclient.New(conn, o)
	}
	if err := c.Login(acc.Username, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login: %w", err)
	}
	return c, nil
}

func imapKey(mbox string, validity uint32, uid imap.UID) string {
	return url.QueryEscape(mbox) + ":" + strconv.FormatUint(uint64(validity), 10) + ":" + strconv.FormatUint(uint64(uid), 10)
}

func parseIMAPKey(k string) (mbox string, validity uint32, uid imap.UID, ok bool) {
	f := strings.Split(k, ":")
	if len(f) != 3 {
		return "", 0, 0, false
	}
	m, err := url.QueryUnescape(f[0])
	v, err2 := strconv.ParseUint(f[1], 10, 32)
	u, err3 := strconv.ParseUint(f[2], 10, 32)
	if err != nil || err2 != nil || err3 != nil {
		return "", 0, 0, false
	}
	return m, uint32(v), imap.UID(u), true
}

// FetchIMAP downloads the messages with a UID above the last one stored
// (per mailbox and UIDVALIDITY; a new UIDVALIDITY downloads everything
// again) into the Maildir, without setting \Seen.
func (acc *Account) FetchIMAP(ctx context.Context, password string, opts FetchOptions) (FetchResult, error) {
	var res FetchResult
	root, c, done, err := acc.imapSession(ctx, password)
	if err != nil {
		return res, err
	}
	defer done()
	mboxes := opts.Mailboxes
	if len(mboxes) == 0 {
		mboxes = []string{"INBOX"}
	}
	for _, mbox := range mboxes {
		md, err := mailboxMaildir(root, mbox)
		if err != nil {
			return res, err
		}
		if err := acc.fetchMailbox(c, md, mbox, opts, &res); err != nil {
			return res, err
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return res, fmt.Errorf("imap logout: %w", err)
	}
	return res, nil
}

func (acc *Account) fetchMailbox(c *imapclient.Client, md *mailfile.Maildir, mbox string, opts FetchOptions, res *FetchResult) error {
	sel, err := c.Select(mbox, &imap.SelectOptions{ReadOnly: !opts.Expunge}).Wait()
	if err != nil {
		return fmt.Errorf("imap select %s: %w", mbox, err)
	}
	led, err := OpenLedger(filepath.Join(md.Path, imapLedger), md)
	if err != nil {
		return err
	}
	defer led.Close()
	var last imap.UID
	for _, k := range led.Keys() {
		if m, v, u, ok := parseIMAPKey(k); ok && m == mbox && v == sel.UIDValidity && u > last {
			last = u
		}
	}
	// Keys under an old UIDVALIDITY are meaningless; the current ones map
	// UIDs to local files for sync.
	if err := led.Retain(func(k string) bool {
		m, v, _, ok := parseIMAPKey(k)
		return ok && (m != mbox || v == sel.UIDValidity)
	}); err != nil {
		return err
	}
	if sel.NumMessages > 0 {
		var set imap.UIDSet
		set.AddRange(last+1, 0)
		cmd := c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		done := 0
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			var uid imap.UID
			var body io.Reader
			var flags string // best effort: FLAGS may come after the body
			for {
				item := msg.Next()
				if item == nil {
					break
				}
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = it.UID
				case imapclient.FetchItemDataFlags:
					flags = imapToLetters(it.Flags)
				case imapclient.FetchItemDataBodySection:
					if uid != 0 {
						body = it.Literal
					} else {
						// UID comes later on the wire: buffer the body.
						b, err := io.ReadAll(it.Literal)
						if err != nil {
							cmd.Close()
							return fmt.Errorf("imap fetch: %w", err)
						}
						body = bytes.NewReader(b)
						continue
					}
				}
				if uid != 0 && body != nil {
					break
				}
			}
			done++
			// "last+1:*" also matches the highest message when none is
			// newer (RFC 9051 §6.4.8).
			if uid <= last || body == nil {
				continue
			}
			n, err := led.StoreFlags(imapKey(mbox, sel.UIDValidity, uid), body, flags)
			if err != nil {
				cmd.Close()
				return err
			}
			res.Fetched++
			res.Bytes += n
			if opts.AfterStore != nil {
				if err := opts.AfterStore(res.Fetched); err != nil {
					cmd.Close()
					return err
				}
			}
			if opts.Progress != nil {
				opts.Progress(done, int(sel.NumMessages), res.Bytes)
			}
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("imap fetch %s: %w", mbox, err)
		}
	}
	if opts.Expunge && !opts.Keep {
		for _, k := range led.Keys() {
			if m, v, u, ok := parseIMAPKey(k); ok && m == mbox && v == sel.UIDValidity && u > last {
				last = u
			}
		}
		if last > 0 {
			var set imap.UIDSet
			set.AddRange(1, last)
			if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return fmt.Errorf("imap store: %w", err)
			}
			// RFC 4315 §2.1: UID EXPUNGE leaves alone what others marked
			// \Deleted; plain EXPUNGE is the fallback.
			var exp []uint32
			if c.Caps().Has(imap.CapUIDPlus) {
				exp, err = c.UIDExpunge(set).Collect()
			} else {
				exp, err = c.Expunge().Collect()
			}
			if err != nil {
				return fmt.Errorf("imap expunge: %w", err)
			}
			res.Deleted += len(exp)
		}
	}
	return nil
}
