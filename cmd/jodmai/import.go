package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// importBatch is how many messages share one store transaction: enough to
// make the index commit cheap, few enough that a batch's temporary bodies
// and parsed structures stay small.
const importBatch = 500

// keywordForwarded is the IMAP keyword for Maildir's P (passed) flag.
const keywordForwarded = "$Forwarded"

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
	if *format == "" {
		*format = "mbox"
		if fi.IsDir() && mailfile.IsMaildir(src) {
			*format = "maildir"
		}
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
	imp := &importer{st: a.store, a: a.acct, prog: newProgress(env, "import"), dov: *dov}
	if *format == "maildir" {
		err = imp.maildir(runCtx, src, *mailbox)
	} else {
		err = imp.mboxes(runCtx, src, fi.IsDir(), *mailbox)
	}
	if ferr := imp.flush(context.WithoutCancel(runCtx)); err == nil {
		err = ferr
	}
	imp.discard()
	imp.prog.finish()
	if err != nil {
		return fmt.Errorf("%w (%d messages imported before the failure)", err, imp.prog.msgs)
	}
	fmt.Fprintf(env.stdout, "imported %s\n", imp.prog.summary())
	if imp.kept.mailboxes > 0 {
		fmt.Fprintf(env.stdout, "%s\n", imp.kept)
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

// importer files messages into an account in batches.
type importer struct {
	st   *store.Store
	a    *store.Account
	prog *transferProgress

	mailbox string // the mailbox of the pending batch
	batch   []store.AppendMessage
	where   []string // each batched message's position, for errors
	known   map[string]bool
	copyBuf []byte

	dov  dovecotOptions // see import_dovecot.go
	kept keptStats
}

// ensureMailbox creates a mailbox (and its parents) unless it exists.
func (imp *importer) ensureMailbox(ctx context.Context, name string) error {
	if imp.known == nil {
		imp.known = map[string]bool{}
	}
	if imp.known[name] {
		return nil
	}
	if _, err := imp.a.Mailbox(ctx, name); errors.Is(err, store.ErrNoMailbox) {
		if _, err := imp.a.CreateMailbox(ctx, name, ""); err != nil && !errors.Is(err, store.ErrMailboxExists) {
			return err
		}
	} else if err != nil {
		return err
	}
	imp.known[name] = true
	imp.prog.mailboxes++
	return nil
}

// add streams one message into a new body (CRLF line ends, as the store
// keeps them) and queues it; a full batch is committed.
// flags is called once the message has been read (an mbox message's Status
// header is known only then).
func (imp *importer) add(ctx context.Context, mailbox string, r io.Reader, flags func() mailfile.Flags, date time.Time, where string) error {
	if mailbox != imp.mailbox {
		if err := imp.flush(ctx); err != nil {
			return err
		}
		imp.mailbox = mailbox
	}
	t, err := imp.body(r)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	sf, kw := storeFlags(flags())
	imp.batch = append(imp.batch, store.AppendMessage{Body: t, Flags: sf, Keywords: kw, Date: date})
	imp.where = append(imp.where, where)
	imp.prog.update()
	if len(imp.batch) >= importBatch {
		return imp.flush(ctx)
	}
	return nil
}

// body streams one message into a new temporary body, with CRLF line
// ends as the store keeps them.
func (imp *importer) body(r io.Reader) (*blob.Temp, error) {
	w, err := imp.st.NewBody()
	if err != nil {
		return nil, err
	}
	if imp.copyBuf == nil {
		imp.copyBuf = make([]byte, 32<<10)
	}
	if _, err := io.CopyBuffer(message.NewCRLFWriter(w), r, imp.copyBuf); err != nil {
		w.Abort()
		return nil, err
	}
	return w.Finish()
}

// flush commits the pending batch in one transaction. If it fails, the
// messages are tried one by one, so the error names the message at fault
// and the ones before it are kept.
func (imp *importer) flush(ctx context.Context) error {
	if len(imp.batch) == 0 {
		return nil
	}
	defer imp.discard()
	if _, err := imp.a.AppendMessages(ctx, imp.mailbox, imp.batch); err == nil {
		imp.count(imp.batch)
		return nil
	}
	for i, m := range imp.batch {
		if _, err := imp.a.AppendMessages(ctx, imp.mailbox, []store.AppendMessage{m}); err != nil {
			return fmt.Errorf("%s: %w", imp.where[i], err)
		}
		imp.count(imp.batch[i : i+1])
	}
	return nil
}

func (imp *importer) count(ms []store.AppendMessage) {
	for _, m := range ms {
		imp.prog.msgs++
		imp.prog.bytes += m.Body.Size
	}
	imp.prog.update()
}

// discard removes the temporary bodies of the batch (committed ones live
// on as links in the account).
func (imp *importer) discard() {
	for _, m := range imp.batch {
		m.Body.Remove()
	}
	imp.batch, imp.where = imp.batch[:0], imp.where[:0]
}

// storeFlags maps file flags to the store's flags and keywords.
func storeFlags(f mailfile.Flags) (store.Flags, []string) {
	var sf store.Flags
	for _, x := range flagMap {
		if f&x.file != 0 {
			sf |= x.store
		}
	}
	if f&mailfile.Passed != 0 {
		return sf, []string{keywordForwarded}
	}
	return sf, nil
}

// fileFlags maps the store's flags and keywords to file flags.
func fileFlags(sf store.Flags, keywords []string) mailfile.Flags {
	var f mailfile.Flags
	for _, x := range flagMap {
		if sf&x.store != 0 {
			f |= x.file
		}
	}
	for _, k := range keywords {
		if strings.EqualFold(k, keywordForwarded) {
			f |= mailfile.Passed
		}
	}
	return f
}

var flagMap = []struct {
	file  mailfile.Flags
	store store.Flags
}{
	{mailfile.Seen, store.FlagSeen}, {mailfile.Answered, store.FlagAnswered}, {mailfile.Flagged, store.FlagFlagged},
	{mailfile.Deleted, store.FlagDeleted}, {mailfile.Draft, store.FlagDraft},
}

// mboxes imports one mbox file into mailbox (default INBOX), or every
// *.mbox file below a directory, each into the mailbox named by its path
// ("Foo/Bar.mbox" -> Foo/Bar, below mailbox if given): the layout export
// writes.
func (imp *importer) mboxes(ctx context.Context, src string, isDir bool, mailbox string) error {
	if !isDir {
		if mailbox == "" {
			mailbox = "INBOX"
		}
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		imp.prog.total = fi.Size()
		return imp.mbox(ctx, src, mailbox)
	}
	type file struct{ path, mailbox string }
	var files []file
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".mbox") {
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.ToSlash(rel), ".mbox")
		if mailbox != "" {
			name = mailbox + store.Delimiter + name
		}
		if err := store.CheckMailboxName(name); err != nil {
			return fmt.Errorf("%s: mailbox name %q: %w", path, name, err)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		imp.prog.total += info.Size()
		files = append(files, file{path, name})
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.mbox files in %s", src)
	}
	for _, f := range files {
		if err := imp.mbox(ctx, f.path, f.mailbox); err != nil {
			return err
		}
	}
	return nil
}

// mbox imports one mbox file.
func (imp *importer) mbox(ctx context.Context, path, mailbox string) error {
	if err := imp.ensureMailbox(ctx, mailbox); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	base := imp.prog.done
	cr := &countingReader{r: f, n: func(n int64) { imp.prog.done = base + n }}
	mr := mailfile.NewMboxReader(cr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := mr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		where := fmt.Sprintf("%s: message %d (at byte %d)", path, m.Number, m.Offset)
		if err := imp.add(ctx, mailbox, m, m.Flags, m.Date, where); err != nil {
			return err
		}
	}
}

// maildir imports a Maildir and its Maildir++ subfolders.
func (imp *importer) maildir(ctx context.Context, root, mailbox string) error {
	folders, err := mailfile.MaildirFolders(root)
	if err != nil {
		return err
	}
	type folder struct {
		name    string
		dir     string
		entries []mailfile.MaildirEntry
	}
	var all []folder
	for _, fo := range folders {
		levels := make([]string, len(fo.Levels))
		for i, l := range fo.Levels {
			levels[i] = folderLevelName(l)
		}
		name := strings.Join(levels, store.Delimiter)
		switch {
		case name == "" && mailbox == "":
			name = "INBOX"
		case name == "":
			name = mailbox
		case mailbox != "":
			name = mailbox + store.Delimiter + name
		}
		if err := store.CheckMailboxName(name); err != nil {
			return fmt.Errorf("%s: mailbox name %q: %w", fo.Dir, name, err)
		}
		ents, err := mailfile.ListMaildir(fo.Dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			imp.prog.total += e.Size
		}
		all = append(all, folder{name, fo.Dir, ents})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].name < all[j].name })
	for _, fo := range all {
		if done, err := imp.dovecotFolder(ctx, fo.name, fo.dir, fo.entries); done || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if err := imp.ensureMailbox(ctx, fo.name); err != nil {
			return err
		}
		for _, e := range fo.entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			f, err := os.Open(e.Path)
			if err != nil {
				return err
			}
			err = imp.add(ctx, fo.name, f, func() mailfile.Flags { return e.Flags }, e.Date, e.Path)
			f.Close()
			if err != nil {
				return err
			}
			imp.prog.done += e.Size
		}
	}
	return imp.dovecotSubscriptions(ctx, root, mailbox)
}

// dotUTF7 is how a "." inside a mailbox name level is written in a Maildir++
// folder name, where "." separates levels: the modified UTF-7 form of
// U+002E. IMAP forbids it for printable ASCII, so it never means anything
// else.
const dotUTF7 = "&AC4-"

// folderLevelName decodes a Maildir++ folder name level: modified UTF-7
// (as Dovecot and Courier write them) with dotUTF7 for a dot. A level that
// does not decode is taken as it is.
func folderLevelName(l string) string {
	l = strings.ReplaceAll(l, dotUTF7, ".")
	if d, err := imapwire.DecodeMailboxUTF7(l); err == nil {
		return d
	}
	return l
}

// folderLevel encodes a mailbox name level as a Maildir++ folder name
// level, the inverse of folderLevelName.
func folderLevel(name string) string {
	return strings.ReplaceAll(imapwire.EncodeMailboxUTF7(name), ".", dotUTF7)
}

// countingReader reports how many bytes were read so far.
type countingReader struct {
	r     io.Reader
	total int64
	n     func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.total += int64(n)
	c.n(c.total)
	return n, err
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
