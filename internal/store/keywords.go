package store

import (
	"context"
	"strings"
	"sync"
)

// Keywords a mailbox has used, for the FLAGS response (RFC 3501 §7.2.6,
// RFC 9051 §7.3.5). FLAGS lists the flags that apply in the mailbox, and
// every session of a mailbox should be told of the same ones: a session
// that was never told of a keyword another session set looks, to a client
// comparing its sessions (imaptest's checkpoints do), like a server bug.
// Dovecot keeps a mailbox's keyword list growing for the same reason.
//
// The store keeps, per account and in memory beside \Recent (so an
// account closed while idle keeps it), the keywords set on each mailbox's
// messages in this process, and a version that grows when a mailbox gets a
// keyword it had not had. A session compares the version at each sync and
// announces what is new, even when the message that had the keyword lost it
// or was expunged in the meantime. After a restart the list starts from the
// keywords in use.

// keywordLog is an account's keywords set in this process, per mailbox.
type keywordLog struct {
	mu sync.Mutex
	m  map[int64]*mailboxKeywords
}

// mailboxKeywords is one mailbox's keywords set in this process.
type mailboxKeywords struct {
	version uint64
	known   map[string]string // lowercased -> as first set
}

// noteKeywords records that keywords were set on messages of a mailbox.
func (a *Account) noteKeywords(mailboxID int64, kws []string) {
	if len(kws) == 0 {
		return
	}
	l := &a.recent.keywords
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[int64]*mailboxKeywords{}
	}
	e := l.m[mailboxID]
	if e == nil {
		e = &mailboxKeywords{known: map[string]string{}}
		l.m[mailboxID] = e
	}
	for _, k := range kws {
		lk := strings.ToLower(k)
		if _, ok := e.known[lk]; !ok {
			e.known[lk] = k
			e.version++
		}
	}
}

// KeywordsVersion is a number that changes when a mailbox is given a
// keyword it had not had in this process: a session whose FLAGS were
// computed at another version calls Keywords again.
func (a *Account) KeywordsVersion(mailboxID int64) uint64 {
	l := &a.recent.keywords
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.m[mailboxID]; e != nil {
		return e.version
	}
	return 0
}

// Keywords returns the keywords of a mailbox for FLAGS and PERMANENTFLAGS:
// those its messages have now, and those set on its messages while this
// process runs, sorted and without case-insensitive duplicates.
func (a *Account) Keywords(ctx context.Context, mailboxID int64) ([]string, error) {
	inUse, err := a.keywordsInUse(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	l := &a.recent.keywords
	l.mu.Lock()
	if e := l.m[mailboxID]; e != nil {
		for _, k := range e.known {
			inUse = append(inUse, k)
		}
	}
	l.mu.Unlock()
	return normKeywords(inUse), nil
}
