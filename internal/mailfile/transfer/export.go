package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/store"
)

// exportPage is how many messages export reads at a time.
const exportPage = 500

// Exporter writes the mailboxes of one account to mail files.
type Exporter struct {
	ex exporter
}

// NewExporter starts an export of account a. onProgress, if not nil, is
// called with the counts after every message.
func NewExporter(a *store.Account, onProgress func(Counts)) *Exporter {
	return &Exporter{ex: exporter{a: a, prog: &progress{notify: onProgress}}}
}

// Export writes the account's mailboxes (only the one named mailbox, if
// not "") below dir, in format f: a Maildir (INBOX the root, the others
// Maildir++ folders, flags in file names; a folder must not hold messages
// yet) or mbox files (dir/NAME.mbox, one new file per mailbox, flags in
// Status fields). It only reads the store; messages expunged while it
// runs are skipped (Skipped).
func (e *Exporter) Export(ctx context.Context, dir string, f Format, mailbox string) error {
	ex := &e.ex
	a := ex.a
	var mbs []store.Mailbox
	if mailbox != "" {
		mb, err := a.Mailbox(ctx, mailbox)
		if err != nil {
			return err
		}
		mbs = []store.Mailbox{mb}
	} else {
		var err error
		if mbs, err = a.Mailboxes(ctx); err != nil {
			return err
		}
	}
	ids := make([]int64, len(mbs))
	for i, mb := range mbs {
		ids[i] = mb.ID
	}
	sts, err := a.Statuses(ctx, ids)
	if err != nil {
		return err
	}
	for _, st := range sts {
		ex.prog.Total += st.Messages
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, mb := range mbs {
		if f == Maildir {
			err = ex.maildir(ctx, dir, mb)
		} else {
			err = ex.mbox(ctx, dir, mb)
		}
		if err != nil {
			return err
		}
		ex.prog.Mailboxes++
	}
	return nil
}

// Counts is what the export has done so far.
func (e *Exporter) Counts() Counts { return e.ex.prog.Counts }

// Skipped counts the messages expunged during the export, and so skipped.
func (e *Exporter) Skipped() int { return e.ex.skipped }

type exporter struct {
	a       *store.Account
	prog    *progress
	skipped int
}

// each calls fn for every message of a mailbox, a page of rows at a time,
// with its body converted to LF line ends.
func (ex *exporter) each(ctx context.Context, mb store.Mailbox, fn func(m store.Message, body io.Reader) error) error {
	var after uint32
	for {
		page, err := ex.a.MessagesAfter(ctx, mb.ID, after, exportPage)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, m := range page {
			if err := ctx.Err(); err != nil {
				return err
			}
			f, err := ex.a.OpenBody(m)
			if errors.Is(err, store.ErrNoMessage) {
				ex.skipped++
				continue
			}
			if err != nil {
				return fmt.Errorf("mailbox %s, message UID %d: %w", mb.Name, m.UID, err)
			}
			err = fn(m, mailfile.ToLF(f))
			f.Close()
			if err != nil {
				return fmt.Errorf("mailbox %s, message UID %d: %w", mb.Name, m.UID, err)
			}
			ex.prog.Messages++
			ex.prog.Done++
			ex.prog.Bytes += m.Size
			ex.prog.update()
		}
		after = page[len(page)-1].UID
	}
}

// mailboxLevels splits a mailbox name into path-safe levels; "." and ".."
// and empty levels cannot be file names.
func mailboxLevels(name string) ([]string, error) {
	levels := strings.Split(name, store.Delimiter)
	for _, l := range levels {
		if l == "" || l == "." || l == ".." || strings.ContainsRune(l, 0) {
			return nil, fmt.Errorf("mailbox %q cannot be written as a file name", name)
		}
	}
	return levels, nil
}

// maildir writes a mailbox into the Maildir root (refusing a folder that
// already holds messages): INBOX is the root,
// others are Maildir++ folders named in modified UTF-7 (as Dovecot does),
// a dot in a name written as its UTF-7 form.
func (ex *exporter) maildir(ctx context.Context, root string, mb store.Mailbox) error {
	var levels []string
	if mb.Name != "INBOX" {
		ls, err := mailboxLevels(mb.Name)
		if err != nil {
			return err
		}
		for _, l := range ls {
			levels = append(levels, folderLevel(l))
		}
	}
	dir, err := mailfile.FolderDir(root, levels)
	if err != nil {
		return fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	// Never mix an export into mail already there (a second run would
	// duplicate every message).
	if mailfile.IsMaildir(dir) {
		if ents, err := mailfile.ListMaildir(dir); err != nil {
			return err
		} else if len(ents) > 0 {
			return fmt.Errorf("mailbox %s: %s already holds %d messages: export into an empty directory", mb.Name, dir, len(ents))
		}
	}
	w, err := mailfile.NewMaildirWriter(dir)
	if err != nil {
		return err
	}
	err = ex.each(ctx, mb, func(m store.Message, body io.Reader) error {
		_, _, err := w.Write(body, fileFlags(m.Flags, m.Keywords), m.InternalDate)
		return err
	})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// mbox writes a mailbox to root/NAME.mbox (mboxrd), each message's flags
// in its Status and X-Status fields (set, replaced or added as needed). An
// existing file is never overwritten.
func (ex *exporter) mbox(ctx context.Context, root string, mb store.Mailbox) error {
	levels, err := mailboxLevels(mb.Name)
	if err != nil {
		return err
	}
	path := filepath.Join(append([]string{root}, levels...)...) + ".mbox"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	w := mailfile.NewMboxWriter(f)
	err = ex.each(ctx, mb, func(m store.Message, body io.Reader) error {
		mw, err := w.Begin("", m.InternalDate)
		if err != nil {
			return err
		}
		// mbox keeps flags in Status and X-Status fields.
		_, err = io.Copy(mw, mailfile.WithStatus(body, fileFlags(m.Flags, m.Keywords)))
		return err
	})
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = safeio.SyncParent(path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
