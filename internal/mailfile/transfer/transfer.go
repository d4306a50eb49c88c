// Package transfer moves mail between an account of the store and mail
// files: it imports mbox files, Maildirs (with Maildir++ folders) and
// Dovecot's Maildirs with their UIDs (Importer), and exports an account's
// mailboxes to a Maildir or to mbox files (Exporter). `jodmai import` and
// `jodmai export` are its command line.
//
// Both work beside a running server: they use the store's API only, an
// import commits batches of messages as the server's own appends do (each
// batch one durable transaction), and an export only reads. The files an
// export writes are durable when it returns (see package mailfile's
// writers).
package transfer

import (
	"strings"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/store"
)

// Counts are what a transfer has done so far, for a progress display and
// its summary.
type Counts struct {
	// Total is how many units of Done the transfer has: bytes of input
	// for an import, messages for an export.
	Total, Done int64
	// Messages and Bytes count the messages moved.
	Messages, Bytes int64
	// Mailboxes counts the mailboxes written to (import) or read (export).
	Mailboxes int
}

// keywordForwarded is the IMAP keyword for Maildir's P (passed) flag.
const keywordForwarded = "$Forwarded"

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
