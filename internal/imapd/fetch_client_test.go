package imapd_test

// A raw IMAP client for the FETCH/STORE/SEARCH/SORT/THREAD protocol tests,
// and the messages they deliver.

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wire"
)

// fetchConn is one raw IMAP connection: testenv/wire's client, with cmd
// and ok taking format strings.
type fetchConn struct {
	*wire.IMAP
	t testing.TB
}

// fetchDial connects to the test server's imap listener and logs in.
func fetchDial(t testing.TB, env *testenv.Env, user, pass string) *fetchConn {
	t.Helper()
	c := wire.Dial(t, env.Addr("imap"))
	c.Timeout = time.Minute // big FETCHes under -race
	fc := &fetchConn{wire.NewIMAP(c), t}
	fc.ok(`LOGIN %s %s`, fetchQuote(user), fetchQuote(pass))
	return fc
}

func fetchQuote(s string) string { return strconv.Quote(s) }

// fetchLiteralRE matches the literal a response line announces at its
// end (fetch_bench_test.go reads without the client).
var fetchLiteralRE = regexp.MustCompile(`~?\{(\d+)\+?\}\r\n$`)

// cmd sends a command with a fresh tag and returns the untagged lines and
// the tagged status ("OK ...", "NO ...", "BAD ...").
func (fc *fetchConn) cmd(format string, a ...any) (untagged []string, status string) {
	fc.t.Helper()
	return fc.Cmd(fmt.Sprintf(format, a...))
}

// ok runs a command that must succeed and returns its untagged lines.
func (fc *fetchConn) ok(format string, a ...any) []string {
	fc.t.Helper()
	return fc.OK(fmt.Sprintf(format, a...))
}

// expect runs a command and checks its untagged lines and the start of its
// status exactly.
func (fc *fetchConn) expect(cmd string, wantStatus string, want ...string) {
	fc.t.Helper()
	u, st := fc.cmd("%s", cmd)
	if !strings.HasPrefix(st, wantStatus) {
		fc.t.Errorf("%s: status %q, want %q (untagged %q)", cmd, st, wantStatus, u)
	}
	if strings.Join(u, "\n") != strings.Join(want, "\n") {
		fc.t.Errorf("%s:\n got: %q\nwant: %q", cmd, u, want)
	}
}

// fetchCRLF converts "\n" to "\r\n".
func fetchCRLF(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

const fetchUser = "fetch@example.org"

// fetchMessages are delivered, in order, by fetchSetup.
var fetchMessages = []string{
	// 1: a single part, quoted-printable, RFC 2047 header words.
	fetchCRLF(`From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>
To: Fetch User <fetch@example.org>
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin
Date: Mon, 3 Feb 2025 10:00:00 +0100
Message-ID: <m1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hallo, sch=C3=B6ne Gr=C3=BC=C3=9Fe aus der Stadt.
Zweite Zeile mit einem sehr langen Text, der weich umbrochen=
 wird.
`),
	// 2: multipart/mixed: alternative (plain + html), a base64 attachment
	// holding NUL bytes, and an embedded message with its own parts.
	fetchCRLF(`From: Alice <alice@example.com>
To: fetch@example.org, Bob <bob@example.net>
Cc: Carol <carol@example.net>
Subject: Re: Quarterly report
Date: Tue, 4 Feb 2025 09:30:00 -0800
Message-ID: <m2@example.com>
In-Reply-To: <m0@example.com>
References: <m0@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is a multi-part message.
--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Please find the report attached. Keyword: zebrafish.
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Please find the <b>report</b> attached.</p><p>Caf=C3=A9 &amp; more</p></body></html>
--alt--

--outer
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

AAECAwRoZWxsbwBJTUFQ
--outer
Content-Type: message/rfc822

From: Dave <dave@example.org>
Subject: Inner message
Date: Wed, 1 Jan 2025 12:00:00 +0000
Message-ID: <inner@example.org>
Content-Type: multipart/mixed; boundary="in"

--in
Content-Type: text/plain

inner text part with platypus
--in
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9 au lait
--in--
--outer--
`),
	// 3: latin-1 text, base64, an unknown transfer encoding part.
	fetchCRLF(`From: "Eve Example" <eve@example.org>
To: fetch@example.org
Subject: [list] Fwd: cafe notes (fwd)
Date: Sun, 2 Feb 2025 23:30:00 -0500
Message-ID: <m3@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b3

--b3
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: base64

Q2Fm6SBjcuhtZSBicvts6WUK
--b3
Content-Type: application/x-thing
Content-Transfer-Encoding: x-uuencode

begin 644 x
--b3--
`),
}

// fetchNewEnv starts a server with the user fetchUser and delivers msgs.
func fetchNewEnv(t testing.TB, msgs ...string) *testenv.Env {
	t.Helper()
	env := testenv.Start(t)
	env.AddUser(t, fetchUser, "secret-password")
	for _, m := range msgs {
		env.Deliver(t, fetchUser, []byte(m))
	}
	return env
}

// fetchSetup starts a server, delivers fetchMessages and returns a
// session with INBOX selected.
func fetchSetup(t testing.TB) (*testenv.Env, *fetchConn) {
	t.Helper()
	env := fetchNewEnv(t, fetchMessages...)
	// The messages are recent to the first session that selects INBOX
	// (RFC 3501 §2.3.2); another claims them, so that FLAGS in these
	// tests are only the stored flags (TestRecent covers \Recent).
	fetchDial(t, env, fetchUser, "secret-password").ok("SELECT INBOX")
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	return env, fc
}

// fetchAccount opens fetchUser's store account and INBOX.
func fetchAccount(t testing.TB, env *testenv.Env) (*store.Account, store.Mailbox) {
	t.Helper()
	ctx := context.Background()
	acc, err := env.Users.Account(ctx, fetchUser)
	if err != nil {
		t.Fatal(err)
	}
	a, err := env.Store.Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return a, mb
}

// fetchExpunge expunges INBOX messages behind the sessions' backs.
func fetchExpunge(t testing.TB, env *testenv.Env, uids ...uint32) {
	t.Helper()
	a, mb := fetchAccount(t, env)
	if _, err := a.Expunge(context.Background(), mb.ID, uids); err != nil {
		t.Fatal(err)
	}
}
