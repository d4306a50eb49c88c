package imapd_test

import (
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv/wire"
)

// FuzzSession drives real sessions: one server over an on-disk store for
// the whole run; per input a new connection logs in, sends the input, and
// half-closes. Every server line must be an untagged response, a
// continuation or a tagged reply; the session must end once the input
// does (no hang); no panic may be recovered (the session loop turns one
// into "* BYE internal server error"); and the store must stay consistent.
func FuzzSession(f *testing.F) {
	h := newSessHarness(f, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for _, s := range []string{"one", "two", "three"} {
		h.deliver(sessAlice, sessMessage(s))
	}
	a := h.account(sessAlice)
	mb, _ := sessMailbox(f, a, "INBOX")
	uv := strconv.FormatInt(int64(mb.UIDValidity), 10)

	for _, seed := range []string{
		// What clients send after login.
		"a SELECT INBOX\r\nb FETCH 1:* (FLAGS UID)\r\nc NOOP\r\nd LOGOUT\r\n",
		"a CAPABILITY\r\nb ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\nc ENABLE QRESYNC\r\n" +
			"d SELECT INBOX (QRESYNC (" + uv + " 1 1:3 (1:2 1:2)))\r\ne UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
		"a EXAMINE INBOX (CONDSTORE)\r\nb IDLE\r\nDONE\r\nc CLOSE\r\n",
		"a SELECT INBOX\r\nb IDLE\r\nnot done\r\nc UNSELECT\r\n",
		"a SELECT INBOX\r\nb STORE 1 +FLAGS.SILENT (\\Deleted)\r\nc EXPUNGE\r\nd UID STORE 2 FLAGS (\\Seen $Label1)\r\n",
		"a SELECT INBOX\r\nb UID SEARCH RETURN (SAVE) UNSEEN\r\nc UID FETCH $ (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
		"a SELECT INBOX\r\nb FETCH 1 (BODY[] BODYSTRUCTURE ENVELOPE RFC822.SIZE INTERNALDATE)\r\nc SEARCH TEXT hello\r\n",
		"a LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\nb STATUS INBOX (UIDNEXT HIGHESTMODSEQ SIZE)\r\n",
		"a CREATE Work\r\nb RENAME Work Play\r\nc DELETE Play\r\nd SUBSCRIBE INBOX\r\ne LSUB \"\" *\r\n",
		"a APPEND INBOX (\\Seen) {31}\r\nSubject: appended\r\n\r\nHello.\r\n\r\nb SELECT INBOX\r\n",
		"a APPEND INBOX {20+}\r\nSubject: x\r\n\r\nbody\r\n\r\n",
		"a SELECT INBOX\r\nb UID MOVE 1 Trash\r\nc COPY 1 Archive\r\nd UID EXPUNGE 1:*\r\n",
		"a GETQUOTAROOT INBOX\r\nb NAMESPACE\r\n",
		"a COMPRESS DEFLATE\r\n\x00\x01garbage",
		// Malformed input.
		"\r\n\r\n+ x\r\n\xff\xfe\r\n",
		"a LOGIN {999999999}\r\n",
		"a SELECT {5}\r\nINBOX\r\n",
		"a FETCH 1:* (BODY[1.2.3]<0.10>)\r\n",
		"a SELECT INBOX (QRESYNC (1 2 3 (4 5)))\r\n",
		"a SEARCH OR (NOT (OR ALL ALL)) ((((((((((ALL))))))))))\r\n",
		"a ID (\"a\" {3+}\r\nabc)\r\n",
	} {
		f.Add([]byte(seed))
	}

	badBye := "* BYE internal server error"
	tagged := regexp.MustCompile(`^[\x21-\x7e]+ (OK|NO|BAD)( |$)`)
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wc := wire.New(t, c)
		wc.Timeout = 30 * time.Second
		r := wc.Reader()
		sc := wire.NewIMAP(wc)
		c.Write([]byte("L LOGIN " + sessAlice + " " + sessPass + "\r\n"))
		if _, reply := sc.Until("L"); !strings.HasPrefix(reply, "OK") {
			t.Fatalf("login: %q", reply)
		}
		go func() {
			c.Write(input)
			c.(*net.TCPConn).CloseWrite()
		}()
		for {
			l, err := sc.ReadResponse()
			if err != nil {
				if err == io.EOF && l == "" {
					break
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("the session did not end after the input did (last %q)", l)
				}
				break // reset: the server closed with input unread
			}
			if l == badBye {
				t.Fatalf("the session recovered from a panic")
			}
			if !strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "+ ") && l != "+" && !tagged.MatchString(l) {
				t.Fatalf("malformed response line %q", l)
			}
			if strings.HasSuffix(l, " OK DEFLATE active") {
				io.Copy(io.Discard, r) // the rest is compressed
				break
			}
		}
		sessCheckStore(t, a)
	})
}

// sessCheckStore checks the invariants of every mailbox of alice: UIDs
// ascend and are below UIDNEXT, MODSEQs do not exceed HIGHESTMODSEQ, and
// every body is on disk with the recorded size.
func sessCheckStore(t *testing.T, a *store.Account) {
	t.Helper()
	ctx := context.Background()
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range mbs {
		msgs, err := a.Messages(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		var last uint32
		for _, m := range msgs {
			if m.UID <= last || m.UID >= mb.UIDNext || m.ModSeq > mb.HighestModSeq {
				t.Fatalf("%s: message UID %d MODSEQ %d after UID %d, UIDNEXT %d HIGHESTMODSEQ %d", mb.Name, m.UID, m.ModSeq, last, mb.UIDNext, mb.HighestModSeq)
			}
			last = m.UID
			f, err := a.OpenBody(m)
			if err != nil {
				t.Fatalf("%s UID %d: %v", mb.Name, m.UID, err)
			}
			size, err := f.Seek(0, io.SeekEnd)
			f.Close()
			if err != nil || size != m.Size {
				t.Fatalf("%s UID %d: body size %v, recorded %d (%v)", mb.Name, m.UID, size, m.Size, err)
			}
		}
	}
}
