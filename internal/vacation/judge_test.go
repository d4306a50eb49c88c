package vacation

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"net/textproto"

	"github.com/jodmai/jodmai/internal/userdb"
)

func header(t *testing.T, s string) textproto.MIMEHeader {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(strings.ReplaceAll(s, "\n", "\r\n") + "\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestJudge(t *testing.T) {
	addrs := []string{"alice@example.org", "info@example.org"}
	const to = "To: Alice <alice@example.org>\n"
	for _, tc := range []struct {
		name, from, head, want string
	}{
		{"normal", "bob@remote.test", to, ""},
		{"tagged and cased", "bob@remote.test", "To: ALICE+news@Example.org\n", ""},
		{"via alias in cc", "bob@remote.test", "To: x@remote.test\nCc: info@example.org\n", ""},
		{"auto-submitted no", "bob@remote.test", to + "Auto-Submitted: no (comment)\n", ""},
		{"null sender", "", to, "null reverse path"},
		{"mailer-daemon", "MAILER-DAEMON@remote.test", to, "automatic sender"},
		{"owner-", "owner-list@remote.test", to, "automatic sender"},
		{"-request", "list-request@remote.test", to, "automatic sender"},
		{"self", "alice@example.org", to, "sent by the account"},
		{"auto-replied", "bob@remote.test", to + "Auto-Submitted: auto-replied\n", "auto-submitted"},
		{"auto-generated", "bob@remote.test", to + "Auto-Submitted: Auto-Generated; owner-email=x\n", "auto-submitted"},
		{"bulk", "bob@remote.test", to + "Precedence: bulk\n", "precedence bulk"},
		{"list precedence", "bob@remote.test", to + "Precedence: LIST\n", "precedence list"},
		{"junk", "bob@remote.test", to + "Precedence: junk\n", "precedence junk"},
		{"list-id", "bob@remote.test", to + "List-Id: <l.remote.test>\n", "list message"},
		{"list-unsubscribe", "bob@remote.test", to + "List-Unsubscribe: <mailto:u@remote.test>\n", "list message"},
		{"suppressed", "bob@remote.test", to + "X-Auto-Response-Suppress: OOF, DR\n", "auto-response suppressed"},
		{"spam", "bob@remote.test", to + "X-Spam-Flag: YES\n", "spam"},
		{"bcc", "bob@remote.test", "To: undisclosed-recipients:;\n", "account not in To or Cc"},
		{"other recipient", "bob@remote.test", "To: carol@example.org\n", "account not in To or Cc"},
	} {
		if got := Judge(header(t, tc.head), tc.from, addrs); got != tc.want {
			t.Errorf("%s: Judge = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCompose(t *testing.T) {
	head := header(t, "Subject: =?utf-8?q?Caf=C3=A9?= plans\nMessage-ID: <m2@remote.test>\nReferences: <m0@remote.test>\n <m1@remote.test>\n")
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	msg := string(Compose("alice@example.org", "bob@remote.test", userdb.Vacation{Enabled: true, Body: "Away until Monday.\nCafé closed."}, head, now, "r1@mail.example.org"))
	for _, want := range []string{
		"Return-Path: <>\r\n",
		"From: <alice@example.org>\r\n",
		"To: <bob@remote.test>\r\n",
		"Subject: =?utf-8?q?Auto:_Caf=C3=A9_plans?=\r\n",
		"Message-ID: <r1@mail.example.org>\r\n",
		"In-Reply-To: <m2@remote.test>\r\n",
		"References: <m0@remote.test> <m1@remote.test> <m2@remote.test>\r\n",
		"Auto-Submitted: auto-replied\r\n",
		"\r\n\r\nAway until Monday.\r\nCaf=C3=A9 closed.\r\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("reply lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\n") {
		t.Errorf("bare LF in reply:\n%q", msg)
	}
	// A configured subject replaces "Auto: ...".
	msg = string(Compose("alice@example.org", "bob@remote.test", userdb.Vacation{Subject: "Out of office", Body: "x"}, head, now, "r2@h"))
	if !strings.Contains(msg, "Subject: Out of office\r\n") {
		t.Errorf("configured subject missing:\n%s", msg)
	}
}
