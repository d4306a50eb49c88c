package ua

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/safeio"
)

// maildirFlags maps Maildir info letters to IMAP system flags.
var maildirFlags = []struct {
	letter byte
	flag   imap.Flag
}{
	{'D', imap.FlagDraft},
	{'F', imap.FlagFlagged},
	{'R', imap.FlagAnswered},
	{'S', imap.FlagSeen},
	{'T', imap.FlagDeleted},
}

func imapToLetters(flags []imap.Flag) string {
	var b []byte
	for _, m := range maildirFlags {
		for _, f := range flags {
			if strings.EqualFold(string(f), string(m.flag)) {
				b = append(b, m.letter)
				break
			}
		}
	}
	return string(b)
}

// onlySynced keeps the letters sync manages, sorted.
func onlySynced(letters string) string {
	var b []byte
	for _, m := range maildirFlags {
		if strings.IndexByte(letters, m.letter) >= 0 {
			b = append(b, m.letter)
		}
	}
	return string(b)
}

// merge is a three-way merge of flag letters: a flag that changed on one
// side since base takes that side's value.
func merge(base, local, server string) string {
	var b []byte
	for _, m := range maildirFlags {
		inB := strings.IndexByte(base, m.letter) >= 0
		inL := strings.IndexByte(local, m.letter) >= 0
		inS := strings.IndexByte(server, m.letter) >= 0
		v := inS
		if inL != inB {
			v = inL
		}
		if v {
			b = append(b, m.letter)
		}
	}
	return string(b)
}

// SyncResult sums up a sync.
type SyncResult struct {
	FetchResult
	Up, Down int // messages whose flags changed on the server / locally
}

func (r SyncResult) String() string {
	return fmt.Sprintf("%s; flags: %d updated on the server, %d locally", r.FetchResult, r.Up, r.Down)
}

const syncState = "jodmai-sync.state"

// SyncIMAP fetches the new messages of the given mailboxes (INBOX when
// none are given), then synchronises the flags of the messages fetched
// over IMAP both ways: a flag changed on one side since the last sync is
// changed on the other. INBOX is the Maildir's root, other mailboxes its
// Maildir++ folders (as FetchIMAP files them). Maildir letters D F R S T
// map to \Draft \Flagged \Answered \Seen \Deleted. Deleting a file
// locally or a message on the server deletes nothing on the other side.
func (acc *Account) SyncIMAP(ctx context.Context, password string, mailboxes ...string) (SyncResult, error) {
	if len(mailboxes) == 0 {
		mailboxes = []string{"INBOX"}
	}
	var res SyncResult
	fr, err := acc.FetchIMAP(ctx, password, FetchOptions{Mailboxes: mailboxes})
	res.FetchResult = fr
	if err != nil {
		return res, err
	}
	root, c, done, err := acc.imapSession(ctx, password)
	if err != nil {
		return res, err
	}
	defer done()
	for _, mbox := range mailboxes {
		md, err := mailboxMaildir(root, mbox)
		if err != nil {
			return res, err
		}
		if err := syncMailbox(c, md, mbox, &res); err != nil {
			return res, err
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return res, fmt.Errorf("imap logout: %w", err)
	}
	return res, nil
}

// IMAPMailboxes lists the server's selectable mailboxes (LIST "" "*"), for
// a sync of all of them.
func (acc *Account) IMAPMailboxes(ctx context.Context, password string) ([]string, error) {
	c, err := acc.DialIMAP(ctx, password)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("imap list: %w", err)
	}
	var out []string
	for _, d := range list {
		if slices.Contains(d.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(d.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		out = append(out, d.Mailbox)
	}
	sort.Strings(out)
	if err := c.Logout().Wait(); err != nil {
		return nil, fmt.Errorf("imap logout: %w", err)
	}
	return out, nil
}

// syncMailbox synchronises the flags of one mailbox with its Maildir.
func syncMailbox(c *imapclient.Client, md *mailfile.Maildir, mbox string, res *SyncResult) error {
	sel, err := c.Select(mbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap select %s: %w", mbox, err)
	}
	led, err := OpenLedger(filepath.Join(md.Path, imapLedger), md)
	if err != nil {
		return err
	}
	led.Close()
	// Local files by unique name.
	ents, err := md.List()
	if err != nil {
		return err
	}
	local := map[string]mailfile.MaildirEntry{}
	for _, e := range ents {
		local[e.Name] = e
	}
	byUID := map[imap.UID]string{} // UID -> key
	for _, k := range led.Keys() {
		if m, v, u, ok := parseIMAPKey(k); ok && m == mbox && v == sel.UIDValidity {
			if _, ok := local[led.Name(k)]; ok {
				byUID[u] = k
			}
		}
	}
	statePath := filepath.Join(md.Path, syncState)
	base, err := readSyncState(statePath)
	if err != nil {
		return err
	}
	// The state file of a folder keeps other mailboxes' keys (two
	// mailboxes whose names map to one folder share it).
	newState := map[string]string{}
	for k, v := range base {
		if m, _, _, ok := parseIMAPKey(k); ok && m != mbox {
			newState[k] = v
		}
	}
	if sel.NumMessages > 0 && len(byUID) > 0 {
		var all imap.UIDSet
		all.AddRange(1, 0)
		msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return fmt.Errorf("imap fetch flags: %w", err)
		}
		for _, m := range msgs {
			key, ok := byUID[m.UID]
			if !ok {
				continue
			}
			e := local[led.Name(key)]
			srv := imapToLetters(m.Flags)
			loc := onlySynced(e.Letters)
			b, known := base[key]
			if !known {
				// First sync of this message: both sides' flags count.
				b = ""
			}
			want := merge(b, loc, srv)
			if want != srv {
				if err := storeDiff(c, m.UID, srv, want); err != nil {
					return err
				}
				res.Up++
			}
			if want != loc {
				if err := setFlags(md, e, want); err != nil {
					return err
				}
				res.Down++
			}
			newState[key] = want
		}
	}
	return writeSyncState(statePath, newState)
}

func storeDiff(c *imapclient.Client, uid imap.UID, have, want string) error {
	var add, del []imap.Flag
	for _, m := range maildirFlags {
		h, w := strings.IndexByte(have, m.letter) >= 0, strings.IndexByte(want, m.letter) >= 0
		if w && !h {
			add = append(add, m.flag)
		} else if h && !w {
			del = append(del, m.flag)
		}
	}
	set := imap.UIDSetNum(uid)
	for _, op := range []struct {
		op    imap.StoreFlagsOp
		flags []imap.Flag
	}{{imap.StoreFlagsAdd, add}, {imap.StoreFlagsDel, del}} {
		if len(op.flags) == 0 {
			continue
		}
		if err := c.Store(set, &imap.StoreFlags{Op: op.op, Silent: true, Flags: op.flags}, nil).Close(); err != nil {
			return fmt.Errorf("imap store: %w", err)
		}
	}
	return nil
}

// setFlags renames a message into cur/ with the synced letters replaced by
// want, keeping other (custom) letters.
func setFlags(m *mailfile.Maildir, e mailfile.MaildirEntry, want string) error {
	var keep []byte
	for i := 0; i < len(e.Letters); i++ {
		if onlySynced(e.Letters[i:i+1]) == "" {
			keep = append(keep, e.Letters[i])
		}
	}
	_, err := m.SetLetters(e, want+string(keep))
	return err
}

func readSyncState(path string) (map[string]string, error) {
	out := map[string]string{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sync state: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch len(fields) {
		case 1:
			out[fields[0]] = ""
		case 2:
			out[fields[0]] = fields[1]
		}
	}
	return out, sc.Err()
}

func writeSyncState(path string, st map[string]string) error {
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k, st[k])
	}
	if err := safeio.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	return nil
}
