package imapwire

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
)

func TestParseStore(t *testing.T) {
	all := store.FlagSeen | store.FlagDeleted
	for _, tc := range []struct {
		in   string
		want StoreCommand
		kind string
	}{
		{in: ` 2:4 +FLAGS (\Deleted)`, want: StoreCommand{Op: store.FlagsAdd, Flags: store.FlagDeleted}},
		{in: ` 1 -flags.silent (\Seen $Junk)`, want: StoreCommand{Op: store.FlagsRemove, Silent: true, Flags: store.FlagSeen, Keywords: []string{"$Junk"}}},
		{in: ` 1 FLAGS ()`, want: StoreCommand{Op: store.FlagsReplace}},
		{in: ` 1 FLAGS \Seen \Deleted`, want: StoreCommand{Op: store.FlagsReplace, Flags: all}},
		{in: ` 1 FLAGS.SILENT foo`, want: StoreCommand{Op: store.FlagsReplace, Silent: true, Keywords: []string{"foo"}}},
		{in: ` 1 (UNCHANGEDSINCE 12345) +FLAGS (\Seen)`, want: StoreCommand{Op: store.FlagsAdd, Flags: store.FlagSeen, UnchangedSince: 12345, HasUnchangedSince: true}},
		{in: ` 1 (UNCHANGEDSINCE 0) FLAGS ()`, want: StoreCommand{HasUnchangedSince: true}},
		{in: ` 1 +FLAGS`, kind: "syntax"},
		{in: ` 1 +FLAGS `, kind: "syntax"},
		{in: ` 1 FLAGS (\Bogus)`, kind: "syntax"},
		{in: ` 1 *FLAGS (\Seen)`, kind: "syntax"},
		{in: ` 1 +FLAGS.LOUD (\Seen)`, kind: "syntax"},
		{in: ` 1 FLAGS \Seen  \Deleted`, kind: "syntax"},
		{in: ` 1 (UNCHANGEDSINCE) FLAGS ()`, kind: "syntax"},
		{in: ` 1 (FOO 1) FLAGS ()`, kind: "syntax"},
		{in: ` 1 (UNCHANGEDSINCE 1)FLAGS ()`, kind: "syntax"},
		{in: ` 1 FLAGS (\Seen) x`, kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseStore()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err != nil {
			continue
		}
		c.Seq = SeqSet{}
		if fmt.Sprint(*c) != fmt.Sprint(tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, *c, tc.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " INBOX (MESSAGES UNSEEN)", want: "INBOX [MESSAGES UNSEEN]"},
		{in: " blurdybloop (uidnext MESSAGES UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT MAILBOXID uidnext)", want: "blurdybloop [UIDNEXT MESSAGES UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT MAILBOXID]"},
		{in: ` "Entw&APw-rfe" (SIZE)`, want: "Entwürfe [SIZE]"},
		{in: " INBOX ()", kind: "syntax"},
		{in: " INBOX (BOGUS)", kind: "syntax"},
		{in: " INBOX MESSAGES", kind: "syntax"},
		{in: " (MESSAGES)", kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseStatus()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			if got := fmt.Sprintf("%s %v", c.Mailbox, c.Items); got != tc.want {
				t.Errorf("%q: got %s", tc.in, got)
			}
		}
	}
}

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: ` "" *`, want: `sel=0 ref="" pats=["*"] ret=0 status=[] ext=false`},
		{in: ` "" ""`, want: `sel=0 ref="" pats=[""] ret=0 status=[] ext=false`},
		{in: ` ~/Mail/ %`, want: `sel=0 ref="~/Mail/" pats=["%"] ret=0 status=[] ext=false`},
		{in: ` "" INBOX/%/Sub*`, want: `sel=0 ref="" pats=["INBOX/%/Sub*"] ret=0 status=[] ext=false`},
		{in: ` "" Entw&APw-rfe/*`, want: `sel=0 ref="" pats=["Entwürfe/*"] ret=0 status=[] ext=false`},
		{in: ` (SUBSCRIBED RECURSIVEMATCH) "" (% "Other/*")`, want: `sel=5 ref="" pats=["%" "Other/*"] ret=0 status=[] ext=true`},
		{in: ` (special-use) "" *`, want: `sel=8 ref="" pats=["*"] ret=0 status=[] ext=true`},
		{in: ` () "" *`, want: `sel=0 ref="" pats=["*"] ret=0 status=[] ext=true`},
		{in: ` "" * RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))`, want: `sel=0 ref="" pats=["*"] ret=15 status=[MESSAGES UNSEEN] ext=true`},
		{in: ` "" % RETURN ()`, want: `sel=0 ref="" pats=["%"] ret=0 status=[] ext=true`},
		{in: ` (RECURSIVEMATCH) "" *`, kind: "syntax"},
		{in: ` (REMOTE RECURSIVEMATCH) "" *`, kind: "syntax"},
		{in: ` (BOGUS) "" *`, kind: "syntax"},
		{in: ` "" * RETURN (BOGUS)`, kind: "syntax"},
		{in: ` "" * RETURN (STATUS ())`, kind: "syntax"},
		{in: ` "" * RETURN (STATUS (MESSAGES) STATUS (UNSEEN))`, kind: "syntax"},
		{in: ` "" * RETURNS ()`, kind: "syntax"},
		{in: ` "" ()`, kind: "syntax"},
		// A pattern that is no valid modified UTF-7 is taken as sent
		// (it matches nothing), never BAD.
		{in: ` "" a&b`, want: `sel=0 ref="" pats=["a&b"] ret=0 status=[] ext=false`},
		{in: ` ""`, kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseList()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			got := fmt.Sprintf("sel=%d ref=%q pats=%q ret=%d status=%v ext=%v", c.Select, c.Reference, c.Patterns, c.Return, c.Status, c.Extended)
			if got != tc.want {
				t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
			}
		}
	}
}

func TestListMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "INBOX", true},
		{"*", "a/b/c", true},
		{"%", "a", true},
		{"%", "a/b", false},
		{"%/%", "a/b", true},
		{"a/%", "a/b", true},
		{"a/%", "a/b/c", false},
		{"a/*", "a/b/c", true},
		{"a*", "a", true},
		{"a*", "abc/d", true},
		{"a%", "abc/d", false},
		{"", "", true},
		{"", "a", false},
		{"a", "a", true},
		{"a", "A", false},
		{"inbox", "INBOX", true},
		{"Inbox/%", "INBOX/Sub", true},
		{"inb*", "INBOX", true},
		{"inbox", "inbox2", false},
		{"inboxes", "INBOXES", false},
		{"*x*y*", "axbyc", true},
		{"*x*y*", "aybxc", false},
		{"%*%", "a/b", true},
		{"*%", "a/b", true},
		{"Entwürfe", "Entwürfe", true},
		{"%ürfe", "Entwürfe", true},
		{"a/%/c", "a/b/c", true},
		{"a/%/c", "a/b/x/c", false},
		{strings.Repeat("*a", 200) + "*", strings.Repeat("a", 300), true},
		{strings.Repeat("*a", 300) + "*", strings.Repeat("a", 200), false},
		{strings.Repeat("%a", 100), strings.Repeat("a", 100), true},
	} {
		if got := ListMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("ListMatch(%.20q, %.20q) = %v", tc.pattern, tc.name, got)
		}
	}
	if got := ListPattern("Archive/", "%"); got != "Archive/%" {
		t.Error(got)
	}
}

func TestParseSelect(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " INBOX", want: "INBOX false <nil>"},
		{in: " inbox (CONDSTORE)", want: "INBOX true <nil>"},
		{in: " INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))", want: "INBOX false &{67890007 20050715194045000 41,43:211,214:541  }"},
		{in: " INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:1000 41:1041)) CONDSTORE)", want: "INBOX true &{67890007 90060115194045000 41:211,214:541 1:1000 41:1041}"},
		{in: " INBOX (QRESYNC (1 2 (1 5)))", want: "INBOX false &{1 2  1 5}"},
		{in: " INBOX (QRESYNC (1 2))", want: "INBOX false &{1 2   }"},
		{in: " INBOX (QRESYNC (0 2))", kind: "syntax"},
		{in: " INBOX (QRESYNC (1 2 1:*))", kind: "syntax"},
		{in: " INBOX (QRESYNC (1 2 $))", kind: "syntax"},
		{in: " INBOX (QRESYNC (1 2 1 (1)))", kind: "syntax"},
		{in: " INBOX (QRESYNC (1 2) QRESYNC (1 2))", kind: "syntax"},
		{in: " INBOX (QRESYNC)", kind: "syntax"},
		{in: " INBOX (BOGUS)", kind: "syntax"},
		{in: " INBOX ()", want: "INBOX false <nil>"},
		{in: " INBOX CONDSTORE", kind: "syntax"},
		{in: "", kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseSelect()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			got := fmt.Sprintf("%s %v %v", c.Mailbox, c.CondStore, c.QResync)
			if c.QResync != nil {
				q := c.QResync
				got = fmt.Sprintf("%s %v &{%d %d %s %s %s}", c.Mailbox, c.CondStore, q.UIDValidity, q.ModSeq, q.KnownUIDs, q.KnownSeqs, q.KnownSeqUIDs)
			}
			if got != tc.want {
				t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
			}
		}
	}
}

// appendAll drives an APPEND the way a session does, reading each message
// into memory.
func appendAll(d *Decoder, max int64) (string, []string, error) {
	mbox, err := d.ParseAppendMailbox()
	if err != nil {
		return "", nil, err
	}
	var out []string
	for {
		m, err := d.ReadAppendMessage(max)
		if err != nil {
			return mbox, out, err
		}
		data, err := io.ReadAll(m.Data)
		if err != nil {
			return mbox, out, err
		}
		desc := fmt.Sprintf("%b %v", m.Flags, m.Keywords)
		if !m.Date.IsZero() {
			desc += " " + m.Date.Format(time.RFC3339)
		}
		if m.Data.Binary {
			desc += " binary"
		}
		if m.UTF8 {
			desc += " utf8"
		}
		out = append(out, desc+" "+string(data))
		done, err := d.AppendDone()
		if err != nil || done {
			return mbox, out, err
		}
	}
}

func TestAppend(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
		conts          int
	}{
		{in: " saved-messages (\\Seen) {10}\r\nhello worl", want: "saved-messages|1 [] hello worl", conts: 1},
		{in: " INBOX {5+}\r\nhello", want: "INBOX|0 [] hello"},
		{in: " INBOX \"05-Jan-2024 10:00:00 +0100\" {1}\r\nx", want: "INBOX|0 [] 2024-01-05T10:00:00+01:00 x", conts: 1},
		{in: " INBOX (\\Draft $MDNSent) \" 5-Jan-2024 10:00:00 +0100\" ~{3}\r\na\x00b", want: "INBOX|10000 [$MDNSent] 2024-01-05T10:00:00+01:00 binary a\x00b", conts: 1},
		{in: " INBOX UTF8 (~{2}\r\nhi)", want: "INBOX|0 [] binary utf8 hi", conts: 1},
		{in: " Drafts {1}\r\na (\\Seen) {1+}\r\nb {1}\r\nc", want: "Drafts|0 [] a|1 [] b|0 [] c", conts: 2},
		{in: " INBOX () {0}\r\n", want: "INBOX|0 [] ", conts: 1},
		{in: " INBOX {11}\r\n", kind: "toobig"},
		{in: " INBOX (\\Bogus) {1}\r\nx", kind: "syntax"},
		{in: " INBOX \"5-Jan-2024\" {1}\r\nx", kind: "syntax"},
		{in: " INBOX UTF8 ({2}\r\nhi)", kind: "syntax"},
		{in: " INBOX UTF8 (~{2}\r\nhi", kind: "syntax", conts: 1},
		{in: " INBOX UTF7 (~{2}\r\nhi)", kind: "syntax"},
		{in: " INBOX \"hello\"", kind: "syntax"},
		{in: " INBOX {1}\r\nxx", kind: "syntax", conts: 1},
		{in: " INBOX {1}\r\nx ", kind: "syntax", conts: 1},
		{in: " INBOX", kind: "syntax"},
	} {
		d, conts := newDecoder(tc.in+"\r\n", DecoderOptions{})
		mbox, msgs, err := appendAll(d, 10)
		if errKind(err) != tc.kind || *conts != tc.conts {
			t.Errorf("%q: err %v, want %q; %d continuations", tc.in, err, tc.kind, *conts)
			continue
		}
		if err == nil {
			if got := strings.Join(append([]string{mbox}, msgs...), "|"); got != tc.want {
				t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
			}
		}
	}
}

// TestAppendTooBig follows a refused APPEND through SkipLine to the next
// command, for a synchronizing and a non-synchronizing literal.
func TestAppendTooBig(t *testing.T) {
	for _, lit := range []string{"{100}\r\n", "{100+}\r\n" + strings.Repeat("x", 100) + "\r\n"} {
		d, conts := newDecoder("a APPEND INBOX (\\Seen) "+lit+"b NOOP\r\n", DecoderOptions{LiteralPlus: true})
		d.ReadTag()
		d.SP()
		d.ReadCommand()
		_, _, err := appendAll(d, 50)
		var te *LiteralTooBigError
		if !errors.As(err, &te) || te.Size != 100 || te.Max != 50 || *conts != 0 {
			t.Fatalf("%q: %v", lit, err)
		}
		if err := d.SkipLine(); err != nil {
			t.Fatal(err)
		}
		if tag, err := d.ReadTag(); tag != "b" {
			t.Fatalf("%q: next tag %q %v", lit, tag, err)
		}
	}
	// The session refused the mailbox (NO [TRYCREATE]) before reading the
	// literal: a synchronizing literal was never sent, a non-sync one is
	// skipped.
	for _, lit := range []string{"{5}\r\n", "{5+}\r\nhello\r\n"} {
		d, _ := newDecoder("a APPEND Nope "+lit+"b NOOP\r\n", DecoderOptions{})
		d.ReadTag()
		d.SP()
		d.ReadCommand()
		if _, err := d.ParseAppendMailbox(); err != nil {
			t.Fatal(err)
		}
		if err := d.SkipLine(); err != nil {
			t.Fatal(err)
		}
		if tag, err := d.ReadTag(); tag != "b" {
			t.Fatalf("%q: next tag %q %v", lit, tag, err)
		}
	}
}

func TestParseEnableIDCompressAuth(t *testing.T) {
	d, _ := newDecoder(" CONDSTORE utf8=accept IMAP4rev2\r\n", DecoderOptions{})
	if caps, err := d.ParseEnable(); err != nil || strings.Join(caps, " ") != "CONDSTORE UTF8=ACCEPT IMAP4REV2" {
		t.Fatal(caps, err)
	}
	for _, in := range []string{"\r\n", " \r\n", " A  B\r\n", " (A)\r\n"} {
		d, _ := newDecoder(in, DecoderOptions{})
		if _, err := d.ParseEnable(); errKind(err) != "syntax" {
			t.Errorf("ENABLE %q: %v", in, err)
		}
	}

	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: ` NIL`, want: `[]`},
		{in: ` ()`, want: `[]`},
		{in: ` ("name" "sodr" "version" "19.34" "vendor" NIL)`, want: `[{name sodr false} {version 19.34 false} {vendor  true}]`},
		{in: ` ({4}` + "\r\nname" + ` {3}` + "\r\nabc)", want: `[{name abc false}]`},
		{in: ` (name "x")`, kind: "syntax"},
		{in: ` ("name")`, kind: "syntax"},
		{in: ` ("name" "x" "y")`, kind: "syntax"},
		{in: ` NILL`, kind: "syntax"},
		{in: ` (` + strings.Repeat(`"k" "v" `, 31) + `)`, kind: "limit"},
		{in: ` ("` + strings.Repeat("k", 31) + `" "v")`, kind: "limit"},
		{in: ` ("k" "` + strings.Repeat("v", 1025) + `")`, kind: "limit"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		ps, err := d.ParseID()
		if errKind(err) != tc.kind {
			t.Errorf("ID %.40q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil && fmt.Sprint(ps) != tc.want {
			t.Errorf("ID %q: got %v", tc.in, ps)
		}
	}

	d, _ = newDecoder(" deflate\r\n", DecoderOptions{})
	if alg, err := d.ParseCompress(); alg != "DEFLATE" || err != nil {
		t.Fatal(alg, err)
	}

	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " plain", want: "PLAIN false []"},
		{in: " PLAIN =", want: "PLAIN true []"},
		{in: " PLAIN AHVzZXIAcGFzcw==", want: "PLAIN true [0 117 115 101 114 0 112 97 115 115]"},
		{in: " SCRAM-SHA-256 biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM", want: "SCRAM-SHA-256 true [110 44 44 110 61 117 115 101 114 44 114 61 102 121 107 111 43 100 50 108 98 98 70 103 79 78 82 118 57 113 107 120 100 97 119 76]"},
		{in: " PLAIN AHVz!", kind: "syntax"},
		{in: " PLAIN AHVzZXI", kind: "syntax"},
		{in: " PLAIN ", kind: "syntax"},
		{in: "", kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseAuthenticate()
		if errKind(err) != tc.kind {
			t.Errorf("AUTHENTICATE %q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			if got := fmt.Sprintf("%s %v %v", c.Mechanism, c.HasInitialResponse, c.InitialResponse); got != tc.want {
				t.Errorf("AUTHENTICATE %q: got %s", tc.in, got)
			}
		}
	}
}

func TestParseCreate(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " Projects/x", want: "Projects/x []"},
		{in: ` "My Sent" (USE (\sent))`, want: `My Sent [\Sent]`},
		{in: ` Stuff (USE (\All \Archive \Drafts \Flagged \Junk \Sent \Trash \Important))`, want: `Stuff [\All \Archive \Drafts \Flagged \Junk \Sent \Trash \Important]`},
		{in: ` Stuff (USE ())`, want: `Stuff []`},
		{in: ` Stuff (USE (Sent))`, kind: "syntax"},
		{in: ` Stuff (OTHER (\Sent))`, kind: "syntax"},
		{in: ` Stuff USE`, kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseCreate()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			if got := fmt.Sprintf("%s %v", c.Mailbox, c.SpecialUse); got != tc.want {
				t.Errorf("%q: got %s", tc.in, got)
			}
		}
	}
}
