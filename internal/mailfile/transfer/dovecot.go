package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/store"
)

// Moving in from Dovecot: a Maildir folder with a dovecot-uidlist is
// imported with its UIDVALIDITY and every message's UID (store
// ImportMailbox, ImportMessages), its keywords (dovecot-keywords and the
// file names' letters), UIDNEXT at least Dovecot's, INBOX messages with
// their POP3 UIDLs, and the root's subscriptions; an IMAP client in sync
// with Dovecot stays in sync, a POP3 client leaving mail on the server
// downloads nothing again. DovecotRoot finds every account's
// Maildir below a Dovecot mail root.

// DovecotKept counts what was imported with Dovecot's UIDs.
type DovecotKept struct {
	// Mailboxes imported with Dovecot's UIDVALIDITY; messages Added with
	// Dovecot's UIDs, already Present, skipped as Below what was expunged
	// here since an earlier import, and Fresh ones (not yet in
	// dovecot-uidlist) given new UIDs.
	Mailboxes, Added, Present, Below, Fresh int
}

func (k DovecotKept) String() string {
	s := fmt.Sprintf("kept Dovecot's UIDVALIDITY and UIDs in %d mailboxes: %d messages added, %d already here", k.Mailboxes, k.Added, k.Present)
	if k.Below > 0 {
		s += fmt.Sprintf(", %d skipped (expunged here since an earlier import)", k.Below)
	}
	if k.Fresh > 0 {
		s += fmt.Sprintf(", %d not yet in dovecot-uidlist got new UIDs", k.Fresh)
	}
	return s
}

// dovecotFolder imports a Maildir folder that has a dovecot-uidlist with
// its UIDs; done is false for a folder without one (imported as a plain
// Maildir by the caller).
func (imp *importer) dovecotFolder(ctx context.Context, name, dir string, ents []mailfile.MaildirEntry) (done bool, err error) {
	ul, err := mailfile.ReadDovecotUIDList(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	keywords, err := mailfile.ReadDovecotKeywords(dir)
	if err != nil {
		return true, err
	}
	if err := imp.flush(ctx); err != nil {
		return true, err
	}
	if _, err := imp.a.ImportMailbox(ctx, name, ul.UIDValidity); err != nil {
		if errors.Is(err, store.ErrUIDValidity) {
			return true, fmt.Errorf("%s: %w; Dovecot's UIDs can only go into a mailbox that is empty or was imported from the same folder", dir, err)
		}
		return true, fmt.Errorf("%s: %w", dir, err)
	}
	if imp.known == nil {
		imp.known = map[string]bool{}
	}
	if !imp.known[name] {
		imp.known[name] = true
		imp.prog.Mailboxes++
	}
	imp.kept.Mailboxes++
	type listed struct {
		e   mailfile.MaildirEntry
		rec mailfile.DovecotUIDRecord
	}
	var withUID []listed
	var fresh []mailfile.MaildirEntry
	for _, e := range ents {
		if rec, ok := ul.Lookup(filepath.Base(e.Path)); ok {
			withUID = append(withUID, listed{e, rec})
		} else {
			fresh = append(fresh, e)
		}
	}
	sort.Slice(withUID, func(i, j int) bool { return withUID[i].rec.UID < withUID[j].rec.UID })
	var batch []store.ImportedMessage
	var batchSize int64
	commit := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := imp.a.ImportMessages(ctx, name, batch)
		for _, m := range batch {
			m.Body.Remove()
		}
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		imp.kept.Added += len(res.Added)
		imp.kept.Present += res.Present
		imp.kept.Below += res.Below
		for _, m := range res.Added {
			imp.prog.Messages++
			imp.prog.Bytes += m.Size
		}
		imp.prog.Done += batchSize
		batchSize = 0
		imp.prog.update()
		return nil
	}
	for _, l := range withUID {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		f, err := os.Open(l.e.Path)
		if err != nil {
			return true, commitThen(commit, err)
		}
		t, err := imp.body(f)
		f.Close()
		if err != nil {
			return true, commitThen(commit, fmt.Errorf("%s: %w", l.e.Path, err))
		}
		sf, kw := storeFlags(l.e.Flags)
		for _, i := range mailfile.InfoKeywords(filepath.Base(l.e.Path)) {
			if k, ok := keywords[i]; ok {
				kw = append(kw, k)
			}
		}
		m := store.ImportedMessage{AppendMessage: store.AppendMessage{Body: t, Flags: sf, Keywords: kw, Date: l.e.Date}, UID: l.rec.UID}
		if name == "INBOX" {
			// POP3 sees INBOX only (RFC 1939's maildrop).
			uidl := l.rec.Ext['P']
			if uidl == "" {
				if uidl, err = mailfile.DovecotUIDL(imp.uidlFormat, l.rec.UID, ul.UIDValidity, l.rec); err != nil {
					return true, commitThen(commit, err)
				}
			}
			if uidl != (store.Message{UID: l.rec.UID}).UIDL(ul.UIDValidity) {
				m.POP3UIDL = uidl
			}
		}
		batch = append(batch, m)
		batchSize += l.e.Size
		if len(batch) >= importBatch {
			if err := commit(); err != nil {
				return true, err
			}
		}
	}
	if err := commit(); err != nil {
		return true, err
	}
	// UIDs Dovecot gave to messages expunged since are never given again.
	if err := imp.a.RaiseUIDNext(ctx, name, ul.NextUID); err != nil {
		return true, err
	}
	// Files Dovecot has not seen yet (delivered after its last sync) get
	// new UIDs, above Dovecot's, as Dovecot would have given them.
	for _, e := range fresh {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		f, err := os.Open(e.Path)
		if err != nil {
			return true, err
		}
		err = imp.add(ctx, name, f, func() mailfile.Flags { return e.Flags }, e.Date, e.Path)
		f.Close()
		if err != nil {
			return true, err
		}
		imp.prog.Done += e.Size
		imp.kept.Fresh++
	}
	return true, imp.flush(ctx)
}

// commitThen commits what is batched before returning err.
func commitThen(commit func() error, err error) error {
	if cerr := commit(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// dovecotSubscriptions applies a Dovecot mail root's subscriptions file
// to the mailboxes imported from it: each is subscribed if and only if
// the file lists it. Nothing happens without the file, or when no folder
// came from Dovecot.
func (imp *importer) dovecotSubscriptions(ctx context.Context, root, mailbox string) error {
	if imp.kept.Mailboxes == 0 {
		return nil
	}
	names, err := mailfile.ReadDovecotSubscriptions(root, store.Delimiter)
	if err != nil || names == nil {
		return err
	}
	subscribed := map[string]bool{}
	for _, n := range names {
		levels := strings.Split(n, store.Delimiter)
		for i, l := range levels {
			levels[i] = folderLevelName(l)
		}
		n = strings.Join(levels, store.Delimiter)
		if strings.EqualFold(n, "INBOX") {
			n = "INBOX"
			if mailbox != "" {
				n = mailbox
			}
		} else if mailbox != "" {
			n = mailbox + store.Delimiter + n
		}
		subscribed[n] = true
	}
	for name := range imp.known {
		if err := imp.a.SetSubscribed(ctx, name, subscribed[name]); err != nil && !errors.Is(err, store.ErrNoMailbox) {
			return err
		}
	}
	return nil
}

// DovecotRoot is a Dovecot mail root and where an account's mail is below
// it.
type DovecotRoot struct {
	Dir string
	// Layout is the path of an account's mail below Dir: %d domain, %n
	// local part, %u address (%% a percent sign); a Maildir there or in
	// its Maildir/ subdirectory.
	Layout string
}

// accountDir is where the layout puts the account address.
func (r DovecotRoot) accountDir(address string) string {
	local, domain, _ := strings.Cut(address, "@")
	rel := strings.NewReplacer("%%", "%", "%d", domain, "%n", local, "%u", address).Replace(r.Layout)
	return filepath.Join(r.Dir, filepath.FromSlash(rel))
}

// AccountMaildir is the Maildir of the account address below the root, ""
// when there is none.
func (r DovecotRoot) AccountMaildir(address string) string {
	dir := r.accountDir(address)
	for _, d := range []string{dir, filepath.Join(dir, "Maildir")} {
		if mailfile.IsMaildir(d) {
			return d
		}
	}
	return ""
}

// Unclaimed lists the directories where the layout expects an account and
// a Maildir is, but that are none of addresses': mail that stays behind
// unless its account is created.
func (r DovecotRoot) Unclaimed(addresses []string) []string {
	used := map[string]bool{}
	for _, a := range addresses {
		used[filepath.Clean(r.accountDir(a))] = true
	}
	var out []string
	depth := strings.Count(strings.Trim(r.Layout, "/"), "/") + 1
	filepath.WalkDir(r.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(r.Dir, path)
		if rel == "." {
			return nil
		}
		if n := strings.Count(rel, string(filepath.Separator)) + 1; n == depth {
			if !used[filepath.Clean(path)] && (mailfile.IsMaildir(path) || mailfile.IsMaildir(filepath.Join(path, "Maildir"))) {
				out = append(out, path)
			}
			return filepath.SkipDir
		}
		return nil
	})
	return out
}
