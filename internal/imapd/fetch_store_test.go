package imapd_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

// fetchModSeqs returns the MODSEQ of each message, by UID, from the store.
func fetchModSeqs(t *testing.T, a *store.Account, mb store.Mailbox) map[uint32]int64 {
	t.Helper()
	msgs, err := a.Messages(context.Background(), mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]int64{}
	for _, m := range msgs {
		out[m.UID] = m.ModSeq
	}
	return out
}

func TestStoreFlags(t *testing.T) {
	env, fc := fetchSetup(t)
	other := fetchDial(t, env, fetchUser, "secret-password")
	other.ok("SELECT INBOX")

	// A new keyword is announced first (RFC 3501 §7.2.6).
	fc.expect(`STORE 1 +FLAGS (\Flagged $Important)`, "OK",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important \*)] flags permitted`,
		`* 1 FETCH (FLAGS (\Flagged $Important))`)
	fc.expect(`STORE 1:2 +FLAGS \Seen`, "OK", `* 1 FETCH (FLAGS (\Flagged \Seen $Important))`, `* 2 FETCH (FLAGS (\Seen))`)
	// Keywords compare case-insensitively; \Recent cannot be stored.
	fc.expect(`STORE 1 -FLAGS ($IMPORTANT \Recent)`, "OK", `* 1 FETCH (FLAGS (\Flagged \Seen))`)
	fc.expect(`STORE 2 FLAGS (\Answered \Recent)`, "OK", `* 2 FETCH (FLAGS (\Answered))`)
	fc.expect(`UID STORE 3 +FLAGS (\Draft)`, "OK", `* 3 FETCH (UID 3 FLAGS (\Draft))`)
	// A message that already has the flags still reports them.
	fc.expect(`STORE 3 +FLAGS (\Draft)`, "OK", `* 3 FETCH (FLAGS (\Draft))`)
	// .SILENT: nothing, now or after the command.
	fc.expect(`STORE 1:3 +FLAGS.SILENT (\Deleted)`, "OK")
	fc.expect("NOOP", "OK")
	fc.expect("FETCH 1:3 FLAGS", "OK", `* 1 FETCH (FLAGS (\Flagged \Deleted \Seen))`,
		`* 2 FETCH (FLAGS (\Answered \Deleted))`, `* 3 FETCH (FLAGS (\Deleted \Draft))`)
	fc.expect(`STORE 1:* FLAGS.SILENT ()`, "OK")
	fc.expect("FETCH 1:3 FLAGS", "OK", `* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS ())`, `* 3 FETCH (FLAGS ())`)
	// The other session sees the final state once, and is told of the
	// keyword that was set meanwhile (every session of a mailbox lists
	// the same keywords, as imaptest's checkpoints check).
	u := other.ok("NOOP")
	want := []string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important \*)] flags permitted`,
		`* 1 FETCH (UID 1 FLAGS ())`, `* 2 FETCH (UID 2 FLAGS ())`, `* 3 FETCH (UID 3 FLAGS ())`}
	if strings.Join(u, "\n") != strings.Join(want, "\n") {
		t.Errorf("other session: %q, want %q", u, want)
	}
	// Errors.
	fc.expect(`STORE 4 +FLAGS (\Seen)`, "BAD")
	fc.expect(`STORE 1 +FLAGS (\Bogus)`, "BAD")
	fc.expect(`UID STORE 9 +FLAGS (\Seen)`, "OK")
	// A message expunged elsewhere, not yet announced.
	fetchExpunge(t, env, 2)
	fc.expect(`STORE 1:3 +FLAGS (\Seen)`, "OK [EXPUNGEISSUED]", `* 1 FETCH (FLAGS (\Seen))`, `* 3 FETCH (FLAGS (\Seen))`)
	fc.expect("NOOP", "OK", "* 2 EXPUNGE")

	fc.ok("EXAMINE INBOX")
	fc.expect(`STORE 1 +FLAGS (\Seen)`, "NO [READ-ONLY]")
}

var storeModSeqRE = regexp.MustCompile(`MODSEQ \((\d+)\)`)

func TestStoreCondStore(t *testing.T) {
	env, fc := fetchSetup(t)
	a, mb := fetchAccount(t, env)
	ms := fetchModSeqs(t, a, mb)

	// UNCHANGEDSINCE enables CONDSTORE; the client is told the mailbox's
	// HIGHESTMODSEQ.
	u, st := fc.cmd(`STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\Seen)`, ms[1])
	if st != "OK STORE completed" || len(u) != 2 || !strings.HasPrefix(u[0], "* OK [HIGHESTMODSEQ ") ||
		!strings.HasPrefix(u[1], `* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (`) {
		t.Fatalf("got %q %q", u, st)
	}
	m1, _ := strconv.ParseInt(storeModSeqRE.FindStringSubmatch(u[1])[1], 10, 64)
	if m1 <= ms[1] {
		t.Errorf("MODSEQ did not rise: %d -> %d", ms[1], m1)
	}
	// Message 1 changed since ms[1]: it fails; 2 and 3 succeed. A STORE by
	// sequence number reports sequence numbers.
	u, st = fc.cmd(`STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\Flagged)`, ms[3])
	if st != "OK [MODIFIED 1] conditional STORE failed" || len(u) != 2 ||
		!strings.HasPrefix(u[0], `* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (`) || !strings.HasPrefix(u[1], `* 3 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (`) {
		t.Errorf("got %q %q", u, st)
	}
	// .SILENT with UNCHANGEDSINCE still sends MODSEQ for what changed (RFC
	// 7162 §3.1.3), UIDs for UID STORE.
	ms = fetchModSeqs(t, a, mb)
	u, st = fc.cmd(`UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Answered)`, ms[1])
	if ms[2] <= ms[1] || st != "OK [MODIFIED 2:3] conditional STORE failed" || len(u) != 1 ||
		!strings.HasPrefix(u[0], `* 1 FETCH (UID 1 MODSEQ (`) {
		t.Errorf("got %q %q", u, st)
	}
	// UNCHANGEDSINCE 0 fails for every message.
	fc.expect(`STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS (\Answered)`, "OK [MODIFIED 1:3]")
	fc.expect(`UID STORE 2,3 (UNCHANGEDSINCE 0) -FLAGS (\Answered)`, "OK [MODIFIED 2:3]")
	// Nothing repeats after the command.
	fc.expect("NOOP", "OK")
	// Plain STORE with CONDSTORE enabled: UID and MODSEQ.
	u = fc.ok(`STORE 3 -FLAGS (\Flagged)`)
	if len(u) != 1 || !strings.HasPrefix(u[0], `* 3 FETCH (UID 3 FLAGS () MODSEQ (`) {
		t.Errorf("got %q", u)
	}
	// CHANGEDSINCE: only what changed after the value, with MODSEQ.
	ms = fetchModSeqs(t, a, mb)
	fc.expect(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", ms[1]), "OK",
		fmt.Sprintf(`* 3 FETCH (FLAGS () MODSEQ (%d))`, ms[3]))
	fc.expect(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", ms[3]), "OK")
	fc.expect("FETCH 2 (MODSEQ)", "OK", fmt.Sprintf(`* 2 FETCH (MODSEQ (%d))`, ms[2]))
	// VANISHED needs QRESYNC.
	fc.expect("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD")
}

func TestFetchVanished(t *testing.T) {
	env := fetchNewEnv(t, fetchMessages...)
	fetchDial(t, env, fetchUser, "secret-password").ok("SELECT INBOX") // claims \Recent
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("ENABLE QRESYNC")
	fc.ok("SELECT INBOX")
	a, mb := fetchAccount(t, env)
	before := fetchModSeqs(t, a, mb)
	fetchExpunge(t, env, 2)
	fc.expect("NOOP", "OK", "* VANISHED 2")
	fc.expect(`UID STORE 3 +FLAGS.SILENT (\Seen)`, "OK")
	ms := fetchModSeqs(t, a, mb)
	// RFC 7162 §3.2.6: VANISHED (EARLIER) first, for the UIDs of the set
	// expunged after the mod-sequence, then the changed messages.
	fc.expect(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", before[3]), "OK",
		"* VANISHED (EARLIER) 2", fmt.Sprintf(`* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (%d))`, ms[3]))
	fc.expect(fmt.Sprintf("UID FETCH 3:* (FLAGS) (CHANGEDSINCE %d VANISHED)", before[3]), "OK",
		fmt.Sprintf(`* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (%d))`, ms[3]))
	fc.expect(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", ms[3]), "OK")
	fc.expect("UID FETCH 1:* (FLAGS) (VANISHED)", "BAD")
	fc.expect("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD")
}
