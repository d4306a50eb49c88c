package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
)

// importBatch is how many messages share one store transaction: enough to
// make the index commit cheap, few enough that a batch's temporary bodies
// and parsed structures stay small.
const importBatch = 500

// Format is a mail file format.
type Format string

// The formats.
const (
	// Mbox is mboxrd (mboxo and mboxcl read alike, Content-Length
	// ignored); an export writes one NAME.mbox file per mailbox.
	Mbox Format = "mbox"
	// Maildir is a Maildir with Maildir++ folders.
	Maildir Format = "maildir"
)

// DetectFormat is the format of src when the user names none: Maildir for
// a directory holding cur/ or new/, Mbox otherwise.
func DetectFormat(src string, isDir bool) Format {
	if isDir && mailfile.IsMaildir(src) {
		return Maildir
	}
	return Mbox
}

// Importer files the messages of mail files into one account.
type Importer struct {
	imp importer
}

// NewImporter starts an import into account a of st. onProgress, if not
// nil, is called with the counts after every message.
func NewImporter(st *store.Store, a *store.Account, onProgress func(Counts)) *Importer {
	return &Importer{imp: importer{st: st, a: a, prog: &progress{notify: onProgress}, uidlFormat: DefaultDovecotUIDLFormat}}
}

// DefaultDovecotUIDLFormat is Dovecot's default pop3_uidl_format.
const DefaultDovecotUIDLFormat = "%08Xu%08Xv"

// SetDovecotUIDLFormat sets Dovecot's pop3_uidl_format (%u UID, %v
// UIDVALIDITY, %f file name, %g GUID), used for INBOX messages whose
// dovecot-uidlist keeps no UIDL; DefaultDovecotUIDLFormat unless set.
func (im *Importer) SetDovecotUIDLFormat(f string) { im.imp.uidlFormat = f }

// Import imports src, in format f, into mailbox ("": INBOX, or for a
// Maildir its folders at the top level): an mbox file, a directory of
// *.mbox files (each into the mailbox named by its path below mailbox:
// the layout Export writes) or a Maildir with its Maildir++ folders (and,
// where Dovecot left its dovecot-uidlist, Dovecot's UIDs). It stops at
// ctx's end between messages; call Finish after it in any case.
func (im *Importer) Import(ctx context.Context, src string, f Format, mailbox string) error {
	if f == Maildir {
		return im.imp.maildir(ctx, src, mailbox)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return im.imp.mboxes(ctx, src, fi.IsDir(), mailbox)
}

// Finish commits what is batched (use a ctx that is not canceled, so an
// interrupted import keeps what it read) and removes the temporary
// bodies.
func (im *Importer) Finish(ctx context.Context) error {
	err := im.imp.flush(ctx)
	im.imp.discard()
	return err
}

// Counts is what the import has done so far.
func (im *Importer) Counts() Counts { return im.imp.prog.Counts }

// Kept is what went in with Dovecot's UIDs.
func (im *Importer) Kept() DovecotKept { return im.imp.kept }

// progress keeps the Counts of a transfer and tells its watcher.
type progress struct {
	Counts
	notify func(Counts)
}

func (p *progress) update() {
	if p.notify != nil {
		p.notify(p.Counts)
	}
}

// importer files messages into an account in batches.
type importer struct {
	st   *store.Store
	a    *store.Account
	prog *progress

	mailbox string // the mailbox of the pending batch
	batch   []store.AppendMessage
	where   []string // each batched message's position, for errors
	known   map[string]bool
	copyBuf []byte

	uidlFormat string // see dovecot.go
	kept       DovecotKept
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
	imp.prog.Mailboxes++
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
		imp.prog.Messages++
		imp.prog.Bytes += m.Body.Size
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
		imp.prog.Total = fi.Size()
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
		imp.prog.Total += info.Size()
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
	base := imp.prog.Done
	cr := &countingReader{r: f, n: func(n int64) { imp.prog.Done = base + n }}
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
			imp.prog.Total += e.Size
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
			imp.prog.Done += e.Size
		}
	}
	return imp.dovecotSubscriptions(ctx, root, mailbox)
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
