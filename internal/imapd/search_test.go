package imapd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

// searchAppend files raw into fetchUser's INBOX with an internal date, as
// IMAP APPEND would.
func searchAppend(t testing.TB, env *testenv.Env, raw string, date time.Time, flags store.Flags) {
	t.Helper()
	a, _ := fetchAccount(t, env)
	w, err := env.Store.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	if _, err := a.Append(context.Background(), "INBOX", tmp, flags, nil, date); err != nil {
		t.Fatal(err)
	}
}

// searchSetup is fetchSetup plus two messages with old internal dates and
// some flags:
//
//	1  \Seen \Flagged $Work  (now)
//	2  \Answered \Deleted    (now)
//	3  \Draft                (now)
//	4  (none)                15-Jun-2024 23:30 -0700
//	5  \Seen                 1-Jan-2020 00:00 +0000
func searchSetup(t *testing.T) (*testenv.Env, *fetchConn) {
	env := fetchNewEnv(t, fetchMessages...)
	searchAppend(t, env, fetchCRLF("From: Frank <frank@example.org>\nSubject: old one\nDate: Sat, 15 Jun 2024 23:30:00 -0700\n\nsummer\n"),
		time.Date(2024, 6, 15, 23, 30, 0, 0, time.FixedZone("", -7*3600)), 0)
	searchAppend(t, env, fetchCRLF("From: Grace <grace@example.org>\nSubject: older\n\nno date header\n"),
		time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), store.FlagSeen)
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	fc.ok(`STORE 1 +FLAGS (\Seen \Flagged $Work)`)
	fc.ok(`STORE 2 +FLAGS (\Answered \Deleted)`)
	fc.ok(`STORE 3 +FLAGS (\Draft)`)
	return env, fc
}

func TestSearchKeys(t *testing.T) {
	_, fc := searchSetup(t)
	sizes := make([]int, len(fetchMessages))
	for i, m := range fetchMessages {
		sizes[i] = len(m)
	}
	tests := []struct{ keys, want string }{
		{"ALL", "1 2 3 4 5"},
		// Flags and keywords.
		{"SEEN", "1 5"},
		{"UNSEEN", "2 3 4"},
		{"FLAGGED", "1"},
		{"ANSWERED DELETED", "2"},
		{"UNDELETED", "1 3 4 5"},
		{"DRAFT", "3"},
		{"UNDRAFT UNSEEN", "2 4"},
		{"KEYWORD $work", "1"},
		{"UNKEYWORD $Work", "2 3 4 5"},
		{"KEYWORD $Other", ""},
		// This session selected INBOX first: all five are recent to it.
		{"RECENT", "1 2 3 4 5"},
		{"NEW", "2 3 4"},
		{"OLD", ""},
		// Sizes.
		{fmt.Sprintf("LARGER %d", sizes[2]), "2"},
		{fmt.Sprintf("SMALLER %d", sizes[2]), "1 4 5"},
		// Sets and logic.
		{"2:3", "2 3"},
		{"*", "5"},
		{"4:*", "4 5"},
		{"UID 1,5", "1 5"},
		{"UID 4:*", "4 5"},
		{"UID 9:*", "5"},
		{"NOT 2", "1 3 4 5"},
		{"OR 1 3", "1 3"},
		{"OR SEEN DRAFT UNFLAGGED", "3 5"},
		{"(SEEN FLAGGED) 1:*", "1"},
		{"NOT (OR SEEN DRAFT)", "2 4"},
		{"NOT (SEEN OR DRAFT ANSWERED)", "1 2 3 4 5"},
		// Internal dates, on the day where the message was received; age.
		{"ON 15-Jun-2024", "4"},
		{"BEFORE 16-Jun-2024", "4 5"},
		{`BEFORE "1-Jan-2020"`, ""},
		{"SINCE 1-Jan-2020 BEFORE 1-Jan-2025", "4 5"},
		{"OLDER 86400", "4 5"},
		{"YOUNGER 86400", "1 2 3"},
		{"SAVEDSINCE 1-Jan-2020", "1 2 3 4 5"},
		{"SAVEDBEFORE 1-Jan-2020", ""},
		{"SAVEDATESUPPORTED", "1 2 3 4 5"},
		// Sent dates: the Date header in its own zone (message 3 is 2-Feb
		// in -0500, 3-Feb in UTC); without one, the internal date.
		{"SENTON 3-Feb-2025", "1"},
		{"SENTON 2-Feb-2025", "3"},
		{"SENTBEFORE 3-Feb-2025", "3 4 5"},
		{"SENTSINCE 4-Feb-2025", "2"},
		{"SENTON 1-Jan-2020", "5"},
		// Header fields, decoded, case-insensitive substrings.
		{"FROM alice", "2"},
		{"FROM ALICE@EXAMPLE.COM", "2"},
		{`FROM "müller"`, "1"},
		{"TO bob", "2"},
		{"TO fetch@example.org", "1 2 3"},
		{"CC carol", "2"},
		{"BCC carol", ""},
		{"SUBJECT report", "2"},
		{"SUBJECT OLD", "4 5"},
		{`HEADER Message-ID "m3@"`, "3"},
		{`HEADER references ""`, "2"},
		{`HEADER X-Missing ""`, ""},
		// Body text: decoded parts (quoted-printable with soft breaks,
		// base64, Latin-1, HTML without markup), embedded messages
		// included, the top header not.
		{"BODY zebrafish", "2"},
		{"BODY platypus", "2"},
		{`BODY "umbrochen wird"`, "1"},
		{`BODY "the report attached"`, "2"},
		{`BODY "<b>"`, ""},
		{"BODY Dave", "2"},
		{"BODY Alice", ""},
		{"TEXT Alice", "2"},
		{"TEXT summer", "4"},
		{"BODY nowhere-to-be-found", ""},
		{"OR BODY zebrafish SUBJECT older", "2 5"},
		{"NOT BODY summer", "1 2 3 5"},
	}
	for _, tc := range tests {
		want := "* SEARCH"
		if tc.want != "" {
			want += " " + tc.want
		}
		fc.expect("SEARCH "+tc.keys, "OK", want)
	}
	// UTF-8 strings (as literals): decoded header words and bodies in
	// several charsets.
	utf8Tests := []struct{ key, arg, want string }{
		{"FROM", "Jürgen Müller", "1"},
		{"SUBJECT", "GRÜSSE", ""}, // ß is not SS under simple case folding
		{"SUBJECT", "grüße", "1"},
		{"BODY", "café", "2 3"},
		{"BODY", "CRÈME", "3"},
		{"BODY", "schöne grüße", "1"},
		{"TEXT", "grüße aus", "1"},
	}
	for _, tc := range utf8Tests {
		want := "* SEARCH"
		if tc.want != "" {
			want += " " + tc.want
		}
		fc.expect(fmt.Sprintf("SEARCH CHARSET UTF-8 %s {%d+}\r\n%s", tc.key, len(tc.arg), tc.arg), "OK", want)
	}
	fc.expect("UID SEARCH CHARSET us-ascii FLAGGED", "OK", "* SEARCH 1")
	fc.expect("SEARCH CHARSET ISO-8859-1 ALL", "NO [BADCHARSET (UTF-8 US-ASCII)]")
	fc.expect("SEARCH BOGUS", "BAD")
}

func TestSearchUIDsAndExpunged(t *testing.T) {
	env, fc := searchSetup(t)
	fetchExpunge(t, env, 1, 3)
	// Not yet announced: the others keep their numbers, the expunged
	// ones match nothing.
	fc.expect("SEARCH ALL", "OK", "* SEARCH 2 4 5")
	fc.expect("UID SEARCH ALL", "OK", "* SEARCH 2 4 5", "* 3 EXPUNGE", "* 1 EXPUNGE", "* 3 RECENT")
	fc.expect("SEARCH ALL", "OK", "* SEARCH 1 2 3")
	fc.expect("UID SEARCH 2:3", "OK", "* SEARCH 4 5")
	fc.expect("UID SEARCH UID 4:5", "OK", "* SEARCH 4 5")
}

func TestSearchObjectIDAndModSeq(t *testing.T) {
	env, fc := searchSetup(t)
	a, mb := fetchAccount(t, env)
	msgs, err := a.Messages(context.Background(), mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	fc.expect("SEARCH EMAILID "+msgs[1].EmailID, "OK", "* SEARCH 2")
	fc.expect("SEARCH THREADID T123", "OK", "* SEARCH")
	// MODSEQ enables CONDSTORE and reports the highest MODSEQ found.
	ms := fetchModSeqs(t, a, mb)
	u := fc.ok("SEARCH MODSEQ %d", ms[2])
	want := []string{fmt.Sprintf("* SEARCH 2 3 (MODSEQ %d)", max(ms[2], ms[3]))}
	if len(u) != 2 || !strings.HasPrefix(u[0], "* OK [HIGHESTMODSEQ ") || u[1] != want[0] {
		t.Errorf("got %q, want HIGHESTMODSEQ and %q", u, want)
	}
	fc.expect(fmt.Sprintf(`SEARCH MODSEQ "/flags/\\draft" all %d`, ms[3]), "OK", fmt.Sprintf("* SEARCH 3 (MODSEQ %d)", ms[3]))
	fc.expect(fmt.Sprintf("SEARCH MODSEQ %d", ms[3]+100), "OK", "* SEARCH")
	fc.expect(fmt.Sprintf("SEARCH RETURN (MIN) MODSEQ %d", ms[2]), "OK",
		fmt.Sprintf(`* ESEARCH (TAG "%s") MIN 2 MODSEQ %d`, fc.NextTag(), ms[2]))
}

func TestSearchESearch(t *testing.T) {
	_, fc := searchSetup(t)
	fc.expect("SEARCH RETURN (MIN MAX COUNT ALL) UNDELETED", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") MIN 1 MAX 5 COUNT 4 ALL 1,3:5`, fc.NextTag()))
	fc.expect("UID SEARCH RETURN () SEEN", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") UID ALL 1,5`, fc.NextTag()))
	fc.expect("SEARCH RETURN (COUNT) SEEN", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 2`, fc.NextTag()))
	fc.expect("SEARCH RETURN (MIN MAX ALL COUNT) KEYWORD none", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 0`, fc.NextTag()))
	fc.expect("SEARCH RETURN (MAX) KEYWORD none", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s")`, fc.NextTag()))
	fc.expect("SEARCH RETURN (BOGUS) ALL", "BAD")
}

func TestSearchRes(t *testing.T) {
	env, fc := searchSetup(t)
	// SAVE alone: no response (RFC 5182 §2.1); "$" then names the result.
	fc.expect("SEARCH RETURN (SAVE) UNSEEN", "OK")
	fc.expect("FETCH $ UID", "OK", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)")
	fc.expect("SEARCH $ UNDELETED", "OK", "* SEARCH 3 4")
	fc.expect("UID SEARCH UID $", "OK", "* SEARCH 2 3 4")
	fc.expect(`STORE $ +FLAGS.SILENT (\Flagged)`, "OK")
	fc.expect("SEARCH FLAGGED", "OK", "* SEARCH 1 2 3 4")
	// With MIN/MAX only, only those are saved.
	fc.expect("SEARCH RETURN (SAVE MIN MAX) FLAGGED", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") MIN 1 MAX 4`, fc.NextTag()))
	fc.expect("UID FETCH $ UID", "OK", "* 1 FETCH (UID 1)", "* 4 FETCH (UID 4)")
	fc.expect("SEARCH RETURN (SAVE COUNT MIN) FLAGGED", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") MIN 1 COUNT 4`, fc.NextTag()))
	fc.expect("SEARCH $", "OK", "* SEARCH 1 2 3 4")
	// Saved as UIDs: expunges elsewhere do not shift it.
	fetchExpunge(t, env, 1)
	fc.expect("NOOP", "OK", "* 1 EXPUNGE", "* 4 RECENT")
	fc.expect("FETCH $ UID", "OK", "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)")
	// A failed SEARCH with SAVE empties it.
	fc.expect("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL", "NO [BADCHARSET")
	fc.expect("FETCH $ UID", "OK")
	// SELECT forgets it.
	fc.expect("SEARCH RETURN (SAVE) ALL", "OK")
	fc.ok("SELECT INBOX")
	fc.expect("SEARCH $", "OK", "* SEARCH")
}

func TestSearchIMAP4rev2(t *testing.T) {
	env := fetchNewEnv(t, fetchMessages...)
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("ENABLE IMAP4rev2")
	fc.ok("SELECT INBOX")
	fc.ok(`STORE 2 +FLAGS.SILENT (\Seen)`)
	// RFC 9051 §6.4.4: IMAP4rev2 always answers with ESEARCH.
	fc.expect("SEARCH SEEN", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") ALL 2`, fc.NextTag()))
	fc.expect("UID SEARCH UNSEEN", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") UID ALL 1,3`, fc.NextTag()))
	fc.expect("SEARCH DRAFT", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s")`, fc.NextTag()))
	// UTF-8 may be quoted in IMAP4rev2.
	fc.expect(`SEARCH BODY "café"`, "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") ALL 2:3`, fc.NextTag()))
}

func TestSearchManyUndecided(t *testing.T) {
	// More undecided messages than one batch holds, interleaved.
	env := fetchNewEnv(t)
	deliverN := func(raw string, n int) { searchDeliverN(t, env, raw, n) }
	a := fetchCRLF("From: alice@example.org\nSubject: one\n\nthe needle is here\n")
	b := fetchCRLF("From: bob@example.org\nSubject: two\n\nnothing to see\n")
	deliverN(a, 200)
	deliverN(b, 300)
	deliverN(a, 100)
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	fc.expect("SEARCH RETURN (COUNT ALL) TEXT needle", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 300 ALL 1:200,501:600`, fc.NextTag()))
	fc.expect("SEARCH RETURN (COUNT ALL) OR FROM bob BODY needle", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 600 ALL 1:600`, fc.NextTag()))
	fc.expect("SEARCH RETURN (COUNT ALL) NOT BODY needle SUBJECT two", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 300 ALL 201:500`, fc.NextTag()))
	fc.expect("SEARCH RETURN (COUNT) HEADER subject one NOT TEXT needle", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 0`, fc.NextTag()))
}

// searchDeliverN files n copies of raw into fetchUser's INBOX in one
// store transaction.
func searchDeliverN(t testing.TB, env *testenv.Env, raw string, n int) {
	t.Helper()
	ctx := context.Background()
	acc, err := env.Users.Account(ctx, fetchUser)
	if err != nil {
		t.Fatal(err)
	}
	w, err := env.Store.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(raw))
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	targets := make([]store.Target, n)
	for i := range targets {
		targets[i] = store.Target{AccountID: acc.ID}
	}
	if err := env.Store.Deliver(ctx, tmp, targets); err != nil {
		t.Fatal(err)
	}
}
