package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jodmai/jodmai/internal/mailfile/transfer"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// runImport imports an mbox file, a directory of .mbox files or a Maildir
// (with its Maildir++ subfolders) into an account. It works beside a
// running server: both write the account's index through SQLite's locking.
func runImport(ctx context.Context, env *cmdEnv, args []string) error {
	mailbox := env.flags.String("mailbox", "", "target mailbox `NAME` (default INBOX; for a Maildir, its root; subfolders go below NAME)")
	format := env.flags.String("format", "", "input `FORMAT`: mbox (mboxrd; mboxo and mboxcl read alike, Content-Length ignored) or maildir (default: maildir for a directory holding cur/ or new/, mbox otherwise)")
	dov := dovecotFlags(env)
	rest, err := env.parse(args, 0, 2)
	if err != nil {
		return err
	}
	if dov.root != "" {
		if len(rest) != 0 || *mailbox != "" || *format != "" {
			return usagef("--dovecot-root takes no ACCOUNT, FILE, --mailbox or --format")
		}
		return runImportDovecotRoot(ctx, env, dov)
	}
	if len(rest) != 2 {
		return usagef("want ACCOUNT and FILE|DIR (or --dovecot-root DIR)")
	}
	if *format != "" && *format != "mbox" && *format != "maildir" {
		return usagef("--format must be mbox or maildir, not %q", *format)
	}
	if *mailbox != "" {
		if err := store.CheckMailboxName(*mailbox); err != nil {
			return usagef("--mailbox %q: %v", *mailbox, err)
		}
	}
	src := rest[1]
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	f := transfer.Format(*format)
	if f == "" {
		f = transfer.DetectFormat(src, fi.IsDir())
	}
	a, closeStore, err := env.openAccountStore(ctx, rest[0])
	if err != nil {
		return err
	}
	defer closeStore()
	// An interrupt stops the import between messages; what was read so
	// far is still committed, and the temporary bodies are removed.
	runCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := newProgress(env, "import")
	imp := transfer.NewImporter(a.store, a.acct, prog.set)
	imp.SetDovecotUIDLFormat(dov.uidlFormat)
	err = imp.Import(runCtx, src, f, *mailbox)
	if ferr := imp.Finish(context.WithoutCancel(runCtx)); err == nil {
		err = ferr
	}
	prog.set(imp.Counts())
	prog.finish()
	if err != nil {
		return fmt.Errorf("%w (%d messages imported before the failure)", err, prog.msgs)
	}
	fmt.Fprintf(env.stdout, "imported %s\n", prog.summary())
	if kept := imp.Kept(); kept.Mailboxes > 0 {
		fmt.Fprintf(env.stdout, "%s\n", kept)
	}
	return nil
}

// accountStore is an open store and one of its accounts.
type accountStore struct {
	store *store.Store
	acct  *store.Account
}

// openAccountStore opens the configured data dir's store and the account
// with the given address.
func (env *cmdEnv) openAccountStore(ctx context.Context, address string) (accountStore, func(), error) {
	users, cfg, err := env.openUsers(ctx)
	if err != nil {
		return accountStore{}, nil, err
	}
	acc, err := users.Account(ctx, address)
	users.Close()
	if errors.Is(err, userdb.ErrNotFound) {
		return accountStore{}, nil, fmt.Errorf("no account %s", address)
	}
	if err != nil {
		return accountStore{}, nil, err
	}
	st, err := store.Open(ctx, cfg.Data, nil)
	if err != nil {
		return accountStore{}, nil, err
	}
	a, err := st.Account(ctx, acc.ID)
	if err != nil {
		st.Close()
		return accountStore{}, nil, err
	}
	return accountStore{st, a}, func() { a.Release(); st.Close() }, nil
}

// transferProgress shows a progress bar on a terminal and makes the
// summary line of import and export.
type transferProgress struct {
	w     io.Writer // nil: no bar
	verb  string
	start time.Time
	last  time.Time
	width int

	total     int64 // units of done (bytes, or messages for export)
	done      int64
	msgs      int64
	bytes     int64
	mailboxes int
	drawn     bool
}

func newProgress(env *cmdEnv, verb string) *transferProgress {
	p := &transferProgress{verb: verb, start: time.Now(), width: 30}
	if isTerminal(env.stderr) {
		p.w = env.stderr
	}
	return p
}

// set takes the counts of the transfer and updates the bar.
func (p *transferProgress) set(c transfer.Counts) {
	p.total, p.done, p.msgs, p.bytes, p.mailboxes = c.Total, c.Done, c.Messages, c.Bytes, c.Mailboxes
	p.update()
}

// update redraws the bar, at most ten times a second.
func (p *transferProgress) update() {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.draw()
}

func (p *transferProgress) draw() {
	frac := 0.0
	if p.total > 0 {
		frac = min(1, float64(p.done)/float64(p.total))
	}
	n := int(frac * float64(p.width))
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d messages, %s", p.verb, strings.Repeat("#", n), strings.Repeat(".", p.width-n), frac*100, p.msgs, humanBytes(p.bytes))
	p.drawn = true
}

// finish ends the bar's line.
func (p *transferProgress) finish() {
	if p.w != nil && p.drawn {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

// summary is "N messages (SIZE) in M mailboxes in ELAPSED".
func (p *transferProgress) summary() string {
	return fmt.Sprintf("%d messages (%s) in %d mailboxes in %s", p.msgs, humanBytes(p.bytes), p.mailboxes, time.Since(p.start).Round(time.Millisecond))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
