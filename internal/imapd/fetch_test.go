package imapd_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// fetchLit is the literal form of s in a response.
func fetchLit(s string) string { return fmt.Sprintf("{%d}\r\n%s", len(s), s) }

// fetchBetween returns the text of s from the first occurrence of from
// through the end of the first occurrence of to after it ("" to: the end).
func fetchBetween(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	if i < 0 {
		t.Fatalf("%q not in message", from)
	}
	if to == "" {
		return s[i:]
	}
	j := strings.Index(s[i:], to)
	if j < 0 {
		t.Fatalf("%q not after %q", to, from)
	}
	return s[i : i+j+len(to)]
}

func TestFetchBodySections(t *testing.T) {
	_, fc := fetchSetup(t)
	m1, m2 := fetchMessages[0], fetchMessages[1]
	hdr2 := m2[:strings.Index(m2, "\r\n\r\n")+4]
	inner := fetchBetween(t, m2, "From: Dave", "--in--")
	innerHdr := inner[:strings.Index(inner, "\r\n\r\n")+4]
	tests := []struct {
		cmd, want string
	}{
		// The whole message and its two halves.
		{"FETCH 2 BODY.PEEK[]", "BODY[] " + fetchLit(m2)},
		{"FETCH 2 BODY.PEEK[HEADER]", "BODY[HEADER] " + fetchLit(hdr2)},
		{"FETCH 2 BODY.PEEK[TEXT]", "BODY[TEXT] " + fetchLit(m2[len(hdr2):])},
		{"FETCH 2 RFC822.HEADER", "RFC822.HEADER " + fetchLit(hdr2)},
		// Header fields, in header order, with the blank line; the names
		// are echoed as sent.
		{"FETCH 2 BODY.PEEK[HEADER.FIELDS (subject FROM X-Missing)]",
			`BODY[HEADER.FIELDS (subject FROM X-Missing)] ` + fetchLit("From: Alice <alice@example.com>\r\nSubject: Re: Quarterly report\r\n\r\n")},
		{"FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (From To Subject Date Message-ID Content-Type Content-Transfer-Encoding)]",
			`BODY[HEADER.FIELDS.NOT (From To Subject Date Message-ID Content-Type Content-Transfer-Encoding)] ` + fetchLit("MIME-Version: 1.0\r\n\r\n")},
		// Part numbers: nested multipart, MIME headers, the embedded
		// message and the parts inside it.
		{"FETCH 2 BODY.PEEK[1.1]", "BODY[1.1] " + fetchLit("Please find the report attached. Keyword: zebrafish.")},
		{"FETCH 2 BODY.PEEK[1.2.MIME]", "BODY[1.2.MIME] " + fetchLit("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")},
		{"FETCH 2 BODY.PEEK[2]", "BODY[2] " + fetchLit("AAECAwRoZWxsbwBJTUFQ")},
		{"FETCH 2 BODY.PEEK[3]", "BODY[3] " + fetchLit(inner)},
		{"FETCH 2 BODY.PEEK[3.HEADER]", "BODY[3.HEADER] " + fetchLit(innerHdr)},
		{"FETCH 2 BODY.PEEK[3.TEXT]", "BODY[3.TEXT] " + fetchLit(inner[len(innerHdr):])},
		{"FETCH 2 BODY.PEEK[3.HEADER.FIELDS (Subject)]", "BODY[3.HEADER.FIELDS (Subject)] " + fetchLit("Subject: Inner message\r\n\r\n")},
		{"FETCH 2 BODY.PEEK[3.1]", "BODY[3.1] " + fetchLit("inner text part with platypus")},
		{"FETCH 2 BODY.PEEK[3.2]", "BODY[3.2] " + fetchLit("caf=E9 au lait")},
		{"FETCH 2 BODY.PEEK[3.2.MIME]", "BODY[3.2.MIME] " + fetchLit("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")},
		// A message that is not multipart has one part: its body.
		{"FETCH 1 BODY.PEEK[1]", "BODY[1] " + fetchLit(m1[strings.Index(m1, "\r\n\r\n")+4:])},
		// Partial: the origin is echoed; past the end is empty.
		{"FETCH 2 BODY.PEEK[1.1]<7.4>", "BODY[1.1]<7> " + fetchLit("find")},
		{"FETCH 2 BODY.PEEK[1.1]<50.100>", "BODY[1.1]<50> " + fetchLit("h.")},
		{"FETCH 2 BODY.PEEK[1.1]<52.1>", "BODY[1.1]<52> " + fetchLit("")},
		{"FETCH 2 BODY.PEEK[HEADER.FIELDS (From)]<6.5>", "BODY[HEADER.FIELDS (From)]<6> " + fetchLit("Alice")},
		{"FETCH 2 BODY.PEEK[]<0.4>", "BODY[]<0> " + fetchLit("From")},
		// Sections that do not exist are NIL.
		{"FETCH 2 BODY.PEEK[4]", "BODY[4] NIL"},
		{"FETCH 2 BODY.PEEK[1.1.1]", "BODY[1.1.1] NIL"},
		{"FETCH 2 BODY.PEEK[1.HEADER]", "BODY[1.HEADER] NIL"},
		{"FETCH 1 BODY.PEEK[2]", "BODY[2] NIL"},
	}
	for _, tc := range tests {
		seq := strings.Fields(tc.cmd)[1]
		fc.expect(tc.cmd, "OK", "* "+seq+" FETCH ("+tc.want+")")
	}
	// Several items in one response, in request order; duplicates once.
	fc.expect("FETCH 2 (BODY.PEEK[1.1]<0.6> UID BODY.PEEK[1.1]<0.6> RFC822.SIZE)", "OK",
		fmt.Sprintf("* 2 FETCH (BODY[1.1]<0> %s UID 2 RFC822.SIZE %d)", fetchLit("Please"), len(m2)))
}

func TestFetchStructure(t *testing.T) {
	_, fc := fetchSetup(t)
	env1 := `("Mon, 3 Feb 2025 10:00:00 +0100" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus Berlin" ` +
		`(("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=" NIL "juergen" "example.org")) ` +
		`(("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=" NIL "juergen" "example.org")) ` +
		`(("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=" NIL "juergen" "example.org")) ` +
		`(("Fetch User" NIL "fetch" "example.org")) NIL NIL NIL "<m1@example.org>")`
	fc.expect("FETCH 1 ENVELOPE", "OK", "* 1 FETCH (ENVELOPE "+env1+")")
	fc.expect("FETCH 1 BODYSTRUCTURE", "OK",
		`* 1 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 122 3 NIL NIL NIL NIL))`)
	fc.expect("FETCH 1 BODY", "OK",
		`* 1 FETCH (BODY ("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 122 3))`)
	innerEnv := `("Wed, 1 Jan 2025 12:00:00 +0000" "Inner message" (("Dave" NIL "dave" "example.org")) ` +
		`(("Dave" NIL "dave" "example.org")) (("Dave" NIL "dave" "example.org")) NIL NIL NIL NIL "<inner@example.org>")`
	fc.expect("FETCH 2 BODYSTRUCTURE", "OK", `* 2 FETCH (BODYSTRUCTURE (`+
		`(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 52 1 NIL NIL NIL NIL)`+
		`("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 99 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "alt") NIL NIL NIL)`+
		`("APPLICATION" "OCTET-STREAM" ("NAME" "data.bin") NIL NIL "BASE64" 20 NIL ("ATTACHMENT" ("FILENAME" "data.bin")) NIL NIL)`+
		`("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 360 `+innerEnv+` `+
		`(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 29 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 14 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "in") NIL NIL NIL)`+
		` 16 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "outer") NIL NIL NIL))`)
	// The macros.
	u := fc.ok("FETCH 3 FAST")
	if len(u) != 1 || !strings.HasPrefix(u[0], `* 3 FETCH (FLAGS () INTERNALDATE "`) || !strings.HasSuffix(u[0], fmt.Sprintf(`" RFC822.SIZE %d)`, len(fetchMessages[2]))) {
		t.Errorf("FETCH FAST: %q", u)
	}
	u = fc.ok("FETCH 3 FULL")
	if len(u) != 1 || !strings.Contains(u[0], " ENVELOPE (") || !strings.Contains(u[0], ` BODY (("TEXT" "PLAIN"`) {
		t.Errorf("FETCH FULL: %q", u)
	}
}

func TestFetchBinary(t *testing.T) {
	_, fc := fetchSetup(t)
	tests := []struct{ cmd, want string }{
		// base64 with NUL bytes: a literal8.
		{"FETCH 2 BINARY.PEEK[2]", "* 2 FETCH (BINARY[2] ~{15}\r\n\x00\x01\x02\x03\x04hello\x00IMAP)"},
		{"FETCH 2 BINARY.SIZE[2]", "* 2 FETCH (BINARY.SIZE[2] 15)"},
		{"FETCH 2 BINARY.PEEK[2]<5.5>", "* 2 FETCH (BINARY[2]<5> ~{5}\r\nhello)"},
		{"FETCH 2 BINARY.PEEK[2]<15.5>", "* 2 FETCH (BINARY[2]<15> ~{0}\r\n)"},
		// quoted-printable: soft line breaks gone, the charset untouched.
		{"FETCH 1 BINARY.PEEK[1]", "* 1 FETCH (BINARY[1] " + fetchLit("Hallo, schöne Grüße aus der Stadt.\r\nZweite Zeile mit einem sehr langen Text, der weich umbrochen wird.\r\n") + ")"},
		{"FETCH 2 BINARY.PEEK[3.2]", "* 2 FETCH (BINARY[3.2] " + fetchLit("caf\xe9 au lait") + ")"},
		{"FETCH 2 BINARY.SIZE[3.2]", "* 2 FETCH (BINARY.SIZE[3.2] 12)"},
		{"FETCH 3 BINARY.PEEK[1]", "* 3 FETCH (BINARY[1] " + fetchLit("Caf\xe9 cr\xe8me br\xfbl\xe9e\n") + ")"},
		// 7bit: as stored.
		{"FETCH 2 BINARY.PEEK[1.1]", "* 2 FETCH (BINARY[1.1] " + fetchLit("Please find the report attached. Keyword: zebrafish.") + ")"},
		{"FETCH 2 BINARY.PEEK[9]", "* 2 FETCH (BINARY[9] NIL)"},
		{"FETCH 2 BINARY.SIZE[9]", "* 2 FETCH (BINARY.SIZE[9] NIL)"},
	}
	for _, tc := range tests {
		fc.expect(tc.cmd, "OK", tc.want)
	}
	// RFC 3516 §4.3: an encoding the server cannot decode.
	fc.expect("FETCH 3 BINARY.PEEK[2]", "NO [UNKNOWN-CTE]")
	fc.expect("FETCH 3 BINARY.SIZE[2]", "NO [UNKNOWN-CTE]")
	// The other messages of the set are still answered.
	fc.expect("FETCH 2:3 (UID BINARY.SIZE[2])", "NO [UNKNOWN-CTE]", "* 2 FETCH (UID 2 BINARY.SIZE[2] 15)")
}

func TestFetchSimpleItems(t *testing.T) {
	_, fc := fetchSetup(t)
	u := fc.ok("FETCH 1:3 (UID INTERNALDATE RFC822.SIZE EMAILID THREADID SAVEDATE)")
	if len(u) != 3 {
		t.Fatalf("got %q", u)
	}
	for i, l := range u {
		want := fmt.Sprintf("* %d FETCH (UID %d INTERNALDATE \"", i+1, i+1)
		if !strings.HasPrefix(l, want) || !strings.Contains(l, fmt.Sprintf(" RFC822.SIZE %d EMAILID (M", len(fetchMessages[i]))) ||
			!strings.Contains(l, " THREADID NIL SAVEDATE \"") {
			t.Errorf("line %d: %q", i, l)
		}
	}
	// EMAILIDs differ between messages.
	if strings.Split(u[0], "EMAILID")[1][:20] == strings.Split(u[1], "EMAILID")[1][:20] {
		t.Errorf("EMAILIDs equal: %q", u)
	}
	// PREVIEW: decoded text, white space collapsed; in IMAP4rev1 non-ASCII
	// goes as a literal.
	fc.expect("FETCH 1:3 PREVIEW", "OK",
		"* 1 FETCH (PREVIEW "+fetchLit("Hallo, schöne Grüße aus der Stadt. Zweite Zeile mit einem sehr langen Text, der weich umbrochen wird.")+")",
		`* 2 FETCH (PREVIEW "Please find the report attached. Keyword: zebrafish.")`,
		"* 3 FETCH (PREVIEW "+fetchLit("Café crème brûlée")+")")
	fc.expect("FETCH 2 (PREVIEW (LAZY))", "OK", `* 2 FETCH (PREVIEW "Please find the report attached. Keyword: zebrafish.")`)
}

func TestFetchPreviewUTF8(t *testing.T) {
	env := fetchNewEnv(t)
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("ENABLE IMAP4rev2")
	fc.ok("SELECT INBOX")
	// An HTML-only message: markup, script and entities do not show.
	env.Deliver(t, fetchUser, []byte(fetchCRLF(`From: a@example.org
Subject: html
Content-Type: text/html; charset=windows-1252

<html><head><style>p {color: red}</style><script>var x = "<p>no</p>";</script></head>
<body><!-- hidden --><p>Gr&uuml;&szlig;e&nbsp;und&#32;mehr &amp; `+"\x93quoted\x94"+`</p><div>second   block</div></body></html>
`)))
	fc.ok("NOOP")
	fc.expect("FETCH 1 PREVIEW", "OK", `* 1 FETCH (PREVIEW "Grüße und mehr & “quoted” second block")`)
}

func TestFetchSeen(t *testing.T) {
	env, fc := fetchSetup(t)
	other := fetchDial(t, env, fetchUser, "secret-password")
	other.ok("SELECT INBOX")

	fc.expect("FETCH 1 BODY.PEEK[TEXT]<0.5>", "OK", "* 1 FETCH (BODY[TEXT]<0> "+fetchLit("Hallo")+")")
	fc.expect("FETCH 1 FLAGS", "OK", `* 1 FETCH (FLAGS ())`)
	// BODY[...] sets \Seen and reports the new flags (RFC 9051 §6.4.5).
	fc.expect("FETCH 1 BODY[TEXT]<0.5>", "OK", "* 1 FETCH (BODY[TEXT]<0> "+fetchLit("Hallo")+` FLAGS (\Seen))`)
	// Reported once: the sync after the command does not repeat it.
	fc.expect("NOOP", "OK")
	// Already seen: no FLAGS unless asked.
	fc.expect("FETCH 1 BODY[TEXT]<0.5>", "OK", "* 1 FETCH (BODY[TEXT]<0> "+fetchLit("Hallo")+")")
	// RFC822.TEXT, RFC822 and BINARY set it too; RFC822.HEADER does not.
	fc.expect("FETCH 2 RFC822.HEADER", "OK", "* 2 FETCH (RFC822.HEADER "+fetchLit(fetchMessages[1][:strings.Index(fetchMessages[1], "\r\n\r\n")+4])+")")
	fc.expect("FETCH 2 FLAGS", "OK", `* 2 FETCH (FLAGS ())`)
	fc.expect("FETCH 2 BINARY[2]<0.1>", "OK", "* 2 FETCH (BINARY[2]<0> ~{1}\r\n\x00 FLAGS (\\Seen))")
	fc.expect("UID FETCH 3 RFC822.SIZE", "OK", fmt.Sprintf("* 3 FETCH (UID 3 RFC822.SIZE %d)", len(fetchMessages[2])))
	u := fc.ok("UID FETCH 3 RFC822")
	if len(u) != 1 || u[0] != "* 3 FETCH (UID 3 RFC822 "+fetchLit(fetchMessages[2])+` FLAGS (\Seen))` {
		t.Errorf("UID FETCH RFC822: %q", u)
	}
	// The other session learns of the changes.
	u = other.ok("NOOP")
	want := []string{`* 1 FETCH (UID 1 FLAGS (\Seen))`, `* 2 FETCH (UID 2 FLAGS (\Seen))`, `* 3 FETCH (UID 3 FLAGS (\Seen))`}
	if strings.Join(u, "\n") != strings.Join(want, "\n") {
		t.Errorf("other session: %q, want %q", u, want)
	}

	// EXAMINE never sets \Seen.
	fc.ok(`STORE 1:3 -FLAGS (\Seen)`)
	fc.ok("EXAMINE INBOX")
	fc.expect("FETCH 1 BODY[TEXT]<0.5>", "OK", "* 1 FETCH (BODY[TEXT]<0> "+fetchLit("Hallo")+")")
	fc.expect("FETCH 1 FLAGS", "OK", `* 1 FETCH (FLAGS ())`)
}

func TestFetchSeenCondStore(t *testing.T) {
	env := fetchNewEnv(t, fetchMessages...)
	fetchDial(t, env, fetchUser, "secret-password").ok("SELECT INBOX") // claims \Recent
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("ENABLE CONDSTORE")
	fc.ok("SELECT INBOX")
	// With CONDSTORE, every FETCH response carries MODSEQ, and one that
	// set \Seen carries UID too (RFC 7162 §3.1).
	u := fc.ok("FETCH 2 BODY[1.1]<0.6>")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* 2 FETCH (UID 2 BODY[1.1]<0> "+fetchLit("Please")+` FLAGS (\Seen) MODSEQ (`) {
		t.Errorf("got %q", u)
	}
	fc.expect("NOOP", "OK")
}

func TestFetchSets(t *testing.T) {
	env, fc := fetchSetup(t)
	fc.expect("UID FETCH 2 FLAGS", "OK", `* 2 FETCH (UID 2 FLAGS ())`)
	fc.expect("UID FETCH 2:* UID", "OK", `* 2 FETCH (UID 2)`, `* 3 FETCH (UID 3)`)
	// UIDs that do not exist are ignored (RFC 9051 §6.4.8); "*" is the
	// highest even in a reversed range.
	fc.expect("UID FETCH 7:9 FLAGS", "OK")
	fc.expect("UID FETCH 9:* FLAGS", "OK", `* 3 FETCH (UID 3 FLAGS ())`)
	fc.expect("FETCH 3,1 FLAGS", "OK", `* 1 FETCH (FLAGS ())`, `* 3 FETCH (FLAGS ())`)
	fc.expect("FETCH *:2 FLAGS", "OK", `* 2 FETCH (FLAGS ())`, `* 3 FETCH (FLAGS ())`)
	// Sequence numbers beyond the mailbox are invalid.
	fc.expect("FETCH 4 FLAGS", "BAD")
	fc.expect("FETCH 1:4 FLAGS", "BAD")
	fc.expect("FETCH 1 (FLAGS) (VANISHED)", "BAD")
	// An empty mailbox: "1:*" is fine.
	fc.ok("SELECT Trash")
	fc.expect("FETCH 1:* FLAGS", "OK")
	fc.expect("UID FETCH 1:* FLAGS", "OK")
	fc.expect("FETCH 1 FLAGS", "BAD")

	// A message expunged by someone else keeps its number until announced;
	// FETCH skips it and says so.
	fc.ok("SELECT INBOX")
	fetchExpunge(t, env, 2)
	fc.expect("FETCH 1:3 UID", "OK [EXPUNGEISSUED]", `* 1 FETCH (UID 1)`, `* 3 FETCH (UID 3)`)
	fc.expect("FETCH 3 UID", "OK FETCH completed", `* 3 FETCH (UID 3)`)
	// A UID command may be followed by the EXPUNGE.
	fc.expect("UID FETCH 1:3 UID", "OK", `* 1 FETCH (UID 1)`, `* 3 FETCH (UID 3)`, `* 2 EXPUNGE`)
	fc.expect("FETCH 1:* UID", "OK", `* 1 FETCH (UID 1)`, `* 2 FETCH (UID 3)`)
}

func TestFetchLargeAttachment(t *testing.T) {
	// A 600 KB attachment: decoding and partial ranges across every
	// buffer boundary.
	data := make([]byte, 600<<10)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	b64 := base64.StdEncoding.EncodeToString(data)
	var body strings.Builder
	for i := 0; i < len(b64); i += 76 {
		body.WriteString(b64[i:min(i+76, len(b64))] + "\r\n")
	}
	msg := fetchCRLF("From: a@example.org\nSubject: big\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nsee attachment\n--x\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n") +
		body.String() + fetchCRLF("--x--\n")
	env := fetchNewEnv(t, msg)
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	fc.expect("FETCH 1 BINARY.SIZE[2]", "OK", fmt.Sprintf("* 1 FETCH (BINARY.SIZE[2] %d)", len(data)))
	for _, r := range [][2]int{{0, 10}, {100000, 5000}, {len(data) - 3, 10}, {len(data), 1}} {
		want := data[min(r[0], len(data)):min(r[0]+r[1], len(data))]
		fc.expect(fmt.Sprintf("FETCH 1 BINARY.PEEK[2]<%d.%d>", r[0], r[1]), "OK",
			fmt.Sprintf("* 1 FETCH (BINARY[2]<%d> ~{%d}\r\n%s)", r[0], len(want), want))
	}
	u := fc.ok("FETCH 1 BINARY.PEEK[2]")
	if len(u) != 1 || u[0] != fmt.Sprintf("* 1 FETCH (BINARY[2] ~{%d}\r\n%s)", len(data), data) {
		t.Errorf("BINARY[2]: %d bytes", len(u[0]))
	}
	fc.expect("FETCH 1 BODY.PEEK[2]<1000.76>", "OK", "* 1 FETCH (BODY[2]<1000> "+fetchLit(body.String()[1000:1076])+")")
	u = fc.ok("FETCH 1 BODY.PEEK[]")
	if len(u) != 1 || u[0] != "* 1 FETCH (BODY[] "+fetchLit(msg)+")" {
		t.Errorf("BODY[]: %d bytes", len(u[0]))
	}
}

func TestFetchManyMessages(t *testing.T) {
	// More messages than one slice of rows (4096) and one batch of
	// structures (256); the responses come in order, complete.
	env := fetchNewEnv(t)
	a := fetchCRLF("From: alice@example.org\nSubject: one\n\nfirst kind\n")
	b := fetchCRLF("From: bob@example.org\nSubject: two\n\nsecond kind\n")
	searchDeliverN(t, env, a, 4100)
	searchDeliverN(t, env, b, 300)
	fetchDial(t, env, fetchUser, "secret-password").ok("SELECT INBOX") // claims \Recent
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	u := fc.ok("FETCH 1:* (UID FLAGS)")
	if len(u) != 4400 {
		t.Fatalf("%d responses", len(u))
	}
	for i, l := range u {
		if want := fmt.Sprintf("* %d FETCH (UID %d FLAGS ())", i+1, i+1); l != want {
			t.Fatalf("response %d: %q, want %q", i, l, want)
		}
	}
	// Setting \Seen across the batches, with a structure for each.
	u = fc.ok("UID FETCH 3900:4400 (BODY[HEADER.FIELDS (Subject)] BODYSTRUCTURE)")
	if len(u) != 501 {
		t.Fatalf("%d responses", len(u))
	}
	for i, l := range u {
		n := 3900 + i
		subj := "one"
		if n > 4100 {
			subj = "two"
		}
		want := fmt.Sprintf("* %d FETCH (UID %d BODY[HEADER.FIELDS (Subject)] %s BODYSTRUCTURE (\"TEXT\" \"PLAIN\"", n, n, fetchLit("Subject: "+subj+"\r\n\r\n"))
		if !strings.HasPrefix(l, want) || !strings.HasSuffix(l, ` FLAGS (\Seen))`) {
			t.Fatalf("response %d: %q", i, l)
		}
	}
	fc.expect("SEARCH RETURN (COUNT ALL) SEEN", "OK", fmt.Sprintf(`* ESEARCH (TAG "%s") COUNT 501 ALL 3900:4400`, fc.NextTag()))
	fc.expect("NOOP", "OK")
}
