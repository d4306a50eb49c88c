package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

const impexpPass = "impexp-secret-pw-1"

// trickyMbox is a canonical mboxrd file (what export writes) with the
// From-line cases that break naive readers: a quoted "From " in a body, a
// ">From " line (quoted once more), a line "From" alone, ">From" without
// the space, Status flags, an empty message, and a last message without a
// trailing newline.
const trickyMbox = "From MAILER-DAEMON Mon Mar  4 05:06:07 2024\n" +
	"Status: RO\n" +
	"X-Status: AF\n" +
	"Subject: one\n" +
	"\n" +
	">From the start of a line\n" +
	">>From already quoted\n" +
	">>>From twice\n" +
	"From\n" +
	">From\n" +
	"\n" +
	"From MAILER-DAEMON Tue Mar  5 10:00:00 2024\n" +
	"Subject: two\n" +
	"\n" +
	"body\n" +
	"\n" +
	"\n" +
	"From MAILER-DAEMON Wed Mar  6 11:12:13 2024\n" +
	"Subject: three\n" +
	"X-Status: D\n" +
	"\n" +
	"line\n" +
	"\n" +
	"From MAILER-DAEMON Thu Mar  7 00:00:01 2024\n" +
	"\n" +
	"From MAILER-DAEMON Fri Mar  8 23:59:59 2024\n" +
	"Subject: last\n" +
	"\n" +
	"no newline at the end"

func impexpEnv(t *testing.T) (*testenv.Env, string) {
	t.Helper()
	env := testenv.Start(t)
	addr := "alice@example.org"
	env.AddUser(t, addr, impexpPass)
	return env, addr
}

func TestImportExportMbox(t *testing.T) {
	env, addr := impexpEnv(t)
	src := filepath.Join(t.TempDir(), "in.mbox")
	if err := os.WriteFile(src, []byte(trickyMbox), 0o600); err != nil {
		t.Fatal(err)
	}
	r := jodmai(t, env.DataDir, "", "import", "--mailbox", "Old/2024", addr, src).ok(t)
	if !strings.HasPrefix(r.stdout, "imported 5 messages (") || !strings.Contains(r.stdout, "in 1 mailboxes") {
		t.Errorf("summary %q", r.stdout)
	}

	// What the running server serves over IMAP: CRLF bodies, the
	// unquoted From lines, Status flags, the From line's date.
	got := imapMailbox(t, env, addr, "Old/2024")
	wantFlags := [][]imap.Flag{{imap.FlagAnswered, imap.FlagFlagged, imap.FlagSeen}, nil, {imap.FlagDeleted}, nil, nil}
	wantDates := []string{"2024-03-04 05:06:07", "2024-03-05 10:00:00", "2024-03-06 11:12:13", "2024-03-07 00:00:01", "2024-03-08 23:59:59"}
	if len(got) != 5 {
		t.Fatalf("IMAP shows %d messages", len(got))
	}
	first := "Status: RO\r\nX-Status: AF\r\nSubject: one\r\n\r\nFrom the start of a line\r\n>From already quoted\r\n>>From twice\r\nFrom\r\n>From\r\n"
	if got[0].body != first {
		t.Errorf("first message over IMAP:\n%q\nwant\n%q", got[0].body, first)
	}
	if got[1].body != "Subject: two\r\n\r\nbody\r\n\r\n" || got[3].body != "" || got[4].body != "Subject: last\r\n\r\nno newline at the end" {
		t.Errorf("bodies over IMAP: %q", []string{got[1].body, got[3].body, got[4].body})
	}
	for i, m := range got {
		if !slices.Equal(m.flags, wantFlags[i]) {
			t.Errorf("message %d flags %v, want %v", i+1, m.flags, wantFlags[i])
		}
		if d := m.date.UTC().Format(time.DateTime); d != wantDates[i] {
			t.Errorf("message %d internal date %s, want %s", i+1, d, wantDates[i])
		}
	}

	// Exported as mboxrd: byte for byte the file imported.
	out := t.TempDir()
	jodmai(t, env.DataDir, "", "export", "--format", "mbox", "--mailbox", "Old/2024", addr, out).ok(t)
	if b, err := os.ReadFile(filepath.Join(out, "Old", "2024.mbox")); err != nil || string(b) != trickyMbox {
		t.Errorf("exported mbox differs (%v):\n%q\nwant\n%q", err, b, trickyMbox)
	}

	// Flags set since are written as Status fields: added to the
	// message that had none.
	imapStore(t, env, addr, "Old/2024", 2, imap.FlagFlagged)
	want := strings.Replace(trickyMbox, "Subject: two\n", "Subject: two\nX-Status: F\n", 1)
	out = t.TempDir()
	r = jodmai(t, env.DataDir, "", "export", "--format", "mbox", addr, out).ok(t)
	if !strings.HasPrefix(r.stdout, "exported 5 messages") {
		t.Errorf("export summary %q", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, "Old", "2024.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("exported mbox differs:\n%q\nwant\n%q", b, want)
	}
	// Every mailbox has its file, the empty ones empty.
	for _, name := range []string{"INBOX.mbox", "Sent.mbox", "Old.mbox"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Size() != 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An existing file is not overwritten.
	jodmai(t, env.DataDir, "", "export", "--format", "mbox", "--mailbox", "Old/2024", addr, out).fails(t, 1, "exists")

	// The export directory imports back, mailbox by mailbox.
	env2, addr2 := impexpEnv(t)
	jodmai(t, env2.DataDir, "", "import", "--format", "mbox", addr2, out).ok(t)
	got2 := env2.Mailbox(t, addr2, "Old/2024")
	if len(got2) != 5 || string(got2[0].Body) != first {
		t.Fatalf("re-import of the export directory: %d messages", len(got2))
	}
	if got2[0].Flags != store.FlagSeen|store.FlagAnswered|store.FlagFlagged || got2[1].Flags != store.FlagFlagged || got2[2].Flags != store.FlagDeleted {
		t.Errorf("re-imported flags %v %v %v", got2[0].Flags, got2[1].Flags, got2[2].Flags)
	}
}

// maildirMsg is one message of a test Maildir.
type maildirMsg struct {
	folder string // "" the root, ".Sent", ...
	name   string // file name in cur/ or new/
	sub    string
	body   string
}

func TestImportExportMaildir(t *testing.T) {
	env, addr := impexpEnv(t)
	src := t.TempDir()
	msgs := []maildirMsg{
		{"", "1700000001.M1P1.host:2,S", "cur", "Subject: seen\n\nhello\n"},
		{"", "1700000002.M1P1.host:2,RS", "cur", "Subject: answered\n\nFrom here\n>From there\n"},
		{"", "1700000003.M1P1.host:2,F", "cur", "Subject: flagged\n\nno newline"},
		{"", "1700000004.M1P1.host:2,T", "cur", "Subject: trashed\n\n\n\n"},
		{"", "1700000005.M1P1.host:2,D", "cur", "Subject: draft\n\nx\n"},
		{"", "1700000006.M1P1.host:2,PS", "cur", "Subject: passed\n\ny\n"},
		{"", "1700000007.M1P1.host", "new", "Subject: new\n\nz\n"},
		{".Sent", "1700000010.M1P1.host:2,S", "cur", "Subject: sent\n\ns\n"},
		{".Foo.Bar", "1700000020.M1P1.host:2,FS", "cur", "Subject: deep\n\nd\n"},
		{".Entw&APw-rfe", "1700000030.M1P1.host:2,D", "cur", "Subject: utf7\n\nu\n"},
		{".v1&AC4-2", "1700000040.M1P1.host:2,", "cur", "Subject: dot\n\nv\n"},
	}
	base := time.Date(2023, 11, 14, 22, 13, 0, 0, time.UTC)
	for i, m := range msgs {
		dir := filepath.Join(src, m.folder)
		for _, sub := range []string{"cur", "new", "tmp"} {
			os.MkdirAll(filepath.Join(dir, sub), 0o700)
		}
		p := filepath.Join(dir, m.sub, m.name)
		if err := os.WriteFile(p, []byte(m.body), 0o600); err != nil {
			t.Fatal(err)
		}
		d := base.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, d, d)
	}
	r := jodmai(t, env.DataDir, "", "import", addr, src).ok(t)
	if !strings.HasPrefix(r.stdout, "imported 11 messages") || !strings.Contains(r.stdout, "in 5 mailboxes") {
		t.Errorf("summary %q", r.stdout)
	}

	// Over IMAP: the flags from the names, the mtime as internal date.
	inbox := imapMailbox(t, env, addr, "INBOX")
	want := [][]imap.Flag{{imap.FlagSeen}, {imap.FlagAnswered, imap.FlagSeen}, {imap.FlagFlagged}, {imap.FlagDeleted}, {imap.FlagDraft}, {"$Forwarded", imap.FlagSeen}, nil}
	if len(inbox) != len(want) {
		t.Fatalf("INBOX has %d messages", len(inbox))
	}
	for i, m := range inbox {
		if !slices.Equal(m.flags, want[i]) {
			t.Errorf("INBOX message %d flags %v, want %v", i+1, m.flags, want[i])
		}
		if !m.date.Equal(base.Add(time.Duration(i) * time.Minute)) {
			t.Errorf("INBOX message %d date %v", i+1, m.date)
		}
		if wantBody := strings.ReplaceAll(msgs[i].body, "\n", "\r\n"); m.body != wantBody {
			t.Errorf("INBOX message %d body %q, want %q", i+1, m.body, wantBody)
		}
	}
	for name, n := range map[string]int{"Sent": 1, "Foo/Bar": 1, "Entwürfe": 1, "Foo": 0, "v1.2": 1} {
		if got := imapMailbox(t, env, addr, name); len(got) != n {
			t.Errorf("%s has %d messages, want %d", name, len(got), n)
		}
	}
	// And over POP3, the maildrop (INBOX) in CRLF.
	if bodies := pop3Retrieve(t, env, addr); len(bodies) != 7 || bodies[1] != strings.ReplaceAll(msgs[1].body, "\n", "\r\n") {
		t.Errorf("POP3 maildrop: %q", bodies)
	}

	// Exported as Maildir: the same files (contents, flags, mtimes) in
	// the same folders; new/ messages land in cur/ without flags.
	out := filepath.Join(t.TempDir(), "Mail")
	jodmai(t, env.DataDir, "", "export", addr, out).ok(t)
	for _, folder := range []string{"", ".Sent", ".Foo.Bar", ".Entw&APw-rfe", ".v1&AC4-2"} {
		srcEnts, err := mailfile.ListMaildir(filepath.Join(src, folder))
		if err != nil {
			t.Fatal(err)
		}
		outEnts, err := mailfile.ListMaildir(filepath.Join(out, folder))
		if err != nil {
			t.Fatal(err)
		}
		if len(srcEnts) != len(outEnts) {
			t.Errorf("folder %q: %d messages exported, want %d", folder, len(outEnts), len(srcEnts))
			continue
		}
		for i := range srcEnts {
			a, _ := os.ReadFile(srcEnts[i].Path)
			b, _ := os.ReadFile(outEnts[i].Path)
			if !bytes.Equal(a, b) {
				t.Errorf("folder %q message %d: %q exported as %q", folder, i+1, a, b)
			}
			if srcEnts[i].Flags != outEnts[i].Flags || !srcEnts[i].Date.Equal(outEnts[i].Date) {
				t.Errorf("folder %q message %d: flags %v date %v exported as %v %v", folder, i+1, srcEnts[i].Flags, srcEnts[i].Date, outEnts[i].Flags, outEnts[i].Date)
			}
			if filepath.Base(filepath.Dir(outEnts[i].Path)) != "cur" {
				t.Errorf("exported into %s", outEnts[i].Path)
			}
		}
	}
	// A second export into the same Maildir would duplicate everything.
	jodmai(t, env.DataDir, "", "export", "--mailbox", "Sent", addr, out).fails(t, 1, "already holds 1 messages")

	// Only the mailbox asked for.
	out2 := t.TempDir()
	jodmai(t, env.DataDir, "", "export", "--mailbox", "Foo/Bar", addr, out2).ok(t)
	if fs, _ := mailfile.MaildirFolders(out2); len(fs) != 2 || strings.Join(fs[1].Levels, ".") != "Foo.Bar" {
		t.Errorf("export --mailbox Foo/Bar wrote %+v", fs)
	}
}

func TestImportErrors(t *testing.T) {
	env, addr := impexpEnv(t)
	dir := t.TempDir()
	notMbox := filepath.Join(dir, "x.txt")
	os.WriteFile(notMbox, []byte("Subject: x\n\nhi\n"), 0o600)
	jodmai(t, env.DataDir, "", "import", addr, notMbox).fails(t, 1, "not an mbox", "x.txt")
	jodmai(t, env.DataDir, "", "import", "nobody@example.org", notMbox).fails(t, 1, "no account")
	jodmai(t, env.DataDir, "", "import", "--format", "zip", addr, notMbox).fails(t, 2, "--format")
	jodmai(t, env.DataDir, "", "import", addr, filepath.Join(dir, "missing")).fails(t, 1, "missing")
	jodmai(t, env.DataDir, "", "export", "--mailbox", "Nope", addr, dir).fails(t, 1, "Nope")

	// A Maildir whose third message cannot be read: the error names it,
	// the two before it are imported, and the exit status says failure.
	md := t.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o700)
	}
	os.WriteFile(filepath.Join(md, "cur", "1:2,S"), []byte("Subject: 1\n\n1\n"), 0o600)
	os.WriteFile(filepath.Join(md, "cur", "2:2,S"), []byte("Subject: 2\n\n2\n"), 0o600)
	bad := filepath.Join(md, "cur", "3:2,S")
	os.Symlink(t.TempDir(), bad) // a directory where a message should be
	os.WriteFile(filepath.Join(md, "cur", "4:2,S"), []byte("Subject: 4\n\n4\n"), 0o600)
	jodmai(t, env.DataDir, "", "import", "--mailbox", "Broken", addr, md).fails(t, 1, bad, "2 messages imported before the failure")
	if got := env.Mailbox(t, addr, "Broken"); len(got) != 2 {
		t.Errorf("%d messages imported before the failure, want 2", len(got))
	}
}

// TestImportLarge imports many small messages and checks that memory does
// not grow with them: the peak live heap of a 20,000-message import (57 MB)
// must stay within a small margin of that of a 200-message one (about 20 MB
// of fixed overhead, the store's SQLite connections included), and heap in
// use within what the collector's target allows above that. Messages held
// in memory would add their size.
// JODMAI_IMPORT_N changes the count (100000 takes about a minute on two
// busy cores).
func TestImportLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large import skipped with -short")
	}
	n := 20000
	if raceEnabled {
		n = 4000 // still 20x the baseline run
	}
	if v, err := strconv.Atoi(os.Getenv("JODMAI_IMPORT_N")); err == nil && v > 0 {
		n = v
	}
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	jodmai(t, dir, impexpPass+"\n", "user", "add", "--password-stdin", "bulk@example.org").ok(t)
	small, smallSize := writeMbox(t, 200)
	big, total := writeMbox(t, n)

	baseInuse, baseLive, _ := peakHeap(t, func() {
		jodmai(t, dir, "", "import", "--mailbox", "Small", "bulk@example.org", small).ok(t)
	})
	var r result
	inuse, live, elapsed := peakHeap(t, func() {
		r = jodmai(t, dir, "", "import", "bulk@example.org", big)
	})
	r.ok(t)
	t.Logf("%d messages (%d bytes): peak heap in use %d, live %d; %d messages (%d bytes) in %v: peak heap in use %d, live %d",
		200, smallSize, baseInuse, baseLive, n, total, elapsed, inuse, live)
	if !strings.HasPrefix(r.stdout, fmt.Sprintf("imported %d messages", n)) {
		t.Errorf("summary %q", r.stdout)
	}
	// The live heap (after a GC) must not grow with the import; heap in
	// use adds the garbage the collector lets pile up, up to about the
	// live heap again (GOGC=100).
	margin := uint64(total) / 16
	if live > baseLive+margin {
		t.Errorf("live heap grew from %d to %d for a %d-byte import: messages are being held in memory", baseLive, live, total)
	}
	if inuse > 2*baseLive+2*margin {
		t.Errorf("heap in use peaked at %d (live heap of a small import %d) for a %d-byte import", inuse, baseLive, total)
	}
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.Account(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	status, err := a.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if status.Messages != int64(n) {
		t.Errorf("INBOX holds %d messages, want %d", status.Messages, n)
	}
}

// writeMbox writes an mbox of n messages of about 3 KB.
func writeMbox(t *testing.T, n int) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.mbox")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	filler := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz ", 25) + "\n"
	for i := range n {
		fmt.Fprintf(bw, "From MAILER-DAEMON Mon Mar  4 05:06:07 2024\nSubject: message %d\nMessage-ID: <%d@example.org>\n\n", i, i)
		for range 3 {
			bw.WriteString(filler)
		}
		bw.WriteString("\n")
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return path, fi.Size()
}

// peakHeap runs fn and samples the heap meanwhile: the peak HeapInuse and
// the peak live heap (as of the last GC).
func peakHeap(t *testing.T, fn func()) (inuse, live uint64, elapsed time.Duration) {
	t.Helper()
	runtime.GC() // start clean (the password hash leaves garbage)
	var peak, peakLive atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peakLive.Load() {
				peakLive.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	fn()
	elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	return peak.Load(), peakLive.Load(), elapsed
}

// imapStore adds a flag to message seq of a mailbox over IMAP.
func imapStore(t *testing.T, env *testenv.Env, addr, mailbox string, seq uint32, flag imap.Flag) {
	t.Helper()
	c, err := imapclient.DialInsecure(env.Addr("imap"), nil)
	if err != nil {
		t.Fatalf("imap dial: %v", err)
	}
	defer c.Close()
	if err := c.Login(addr, impexpPass).Wait(); err != nil {
		t.Fatalf("imap login: %v", err)
	}
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	if err := c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close(); err != nil {
		t.Fatalf("store: %v", err)
	}
}

// imapMessage is what imapMailbox reads of a message.
type imapMessage struct {
	flags []imap.Flag
	date  time.Time
	body  string
}

// imapMailbox reads a mailbox over IMAP from the running server.
func imapMailbox(t *testing.T, env *testenv.Env, addr, mailbox string) []imapMessage {
	t.Helper()
	c, err := imapclient.DialInsecure(env.Addr("imap"), nil)
	if err != nil {
		t.Fatalf("imap dial: %v", err)
	}
	defer c.Close()
	if err := c.Login(addr, impexpPass).Wait(); err != nil {
		t.Fatalf("imap login: %v", err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}} // 1:*
	bufs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("imap fetch: %v", err)
	}
	sort.Slice(bufs, func(i, j int) bool { return bufs[i].UID < bufs[j].UID })
	var out []imapMessage
	for _, b := range bufs {
		flags := slices.Clone(b.Flags)
		slices.Sort(flags)
		var body []byte
		for _, s := range b.BodySection {
			body = s.Bytes
		}
		out = append(out, imapMessage{flags, b.InternalDate, string(body)})
	}
	return out
}

// pop3Retrieve logs in over POP3 and retrieves every message (no DELE).
func pop3Retrieve(t *testing.T, env *testenv.Env, addr string) []string {
	t.Helper()
	c, err := dialText(env.Addr("pop3"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line := func() string {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cmd := func(s string) string {
		if err := c.PrintfLine("%s", s); err != nil {
			t.Fatal(err)
		}
		l := line()
		if !strings.HasPrefix(l, "+OK") {
			t.Fatalf("%s: %s", strings.Fields(s)[0], l)
		}
		return l
	}
	line() // greeting
	cmd("USER " + addr)
	cmd("PASS " + impexpPass)
	var n int
	fmt.Sscanf(cmd("STAT"), "+OK %d", &n)
	var out []string
	for i := 1; i <= n; i++ {
		cmd(fmt.Sprintf("RETR %d", i))
		b, err := c.ReadDotBytes()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.ReplaceAll(string(b), "\n", "\r\n"))
	}
	cmd("QUIT")
	return out
}

func dialText(addr string) (*textproto.Conn, error) { return textproto.Dial("tcp", addr) }

func TestTransferProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &transferProgress{w: &buf, verb: "import", start: time.Now(), width: 10, total: 200}
	p.done, p.msgs, p.bytes = 50, 3, 3<<20
	p.update()
	if got := buf.String(); got != "\rimport [##........]  25% 3 messages, 3.0 MiB" {
		t.Errorf("bar %q", got)
	}
	p.done = 200
	p.update() // within 100 ms: not redrawn
	p.finish() // always drawn, then a newline
	if got := buf.String(); !strings.HasSuffix(got, "[##########] 100% 3 messages, 3.0 MiB\n") {
		t.Errorf("final bar %q", got)
	}
	p.mailboxes = 2
	if s := p.summary(); !strings.HasPrefix(s, "3 messages (3.0 MiB) in 2 mailboxes in ") {
		t.Errorf("summary %q", s)
	}
	// No terminal: no bar.
	q := &transferProgress{}
	q.update()
	q.finish()
}

// TestSyncAllMailboxes: jodmai sync --all reaches mailboxes beyond INBOX.
func TestSyncAllMailboxes(t *testing.T) {
	env, user, accounts, maildir := uaSetup(t)
	env.Deliver(t, user, []byte("Subject: in\r\n\r\ni\r\n"))
	src := filepath.Join(t.TempDir(), "a.mbox")
	os.WriteFile(src, []byte("From MAILER-DAEMON Mon Mar  4 05:06:07 2024\nStatus: RO\nSubject: old\n\no\n"), 0o600)
	jodmai(t, env.DataDir, "", "import", "--mailbox", "Archive/2024", user, src).ok(t)

	jodmai(t, "", "", "sync", "--accounts", accounts, "--all", "--mailbox", "INBOX").fails(t, 2, "exclusive")
	r := jodmai(t, "", "", "sync", "--accounts", accounts, "--all").ok(t)
	if !strings.HasPrefix(r.stdout, "fetched 2 messages") {
		t.Fatalf("sync --all said %q", r.stdout)
	}
	ents, err := mailfile.ListMaildir(filepath.Join(maildir, ".Archive.2024"))
	if err != nil || len(ents) != 1 || ents[0].Flags != mailfile.Seen {
		t.Fatalf("archive folder: %+v %v", ents, err)
	}
	if ents, _ := mailfile.ListMaildir(maildir); len(ents) != 1 {
		t.Fatalf("root Maildir holds %d messages", len(ents))
	}
	r = jodmai(t, "", "", "sync", "--accounts", accounts, "--mailbox", "Archive/2024").ok(t)
	if !strings.HasPrefix(r.stdout, "fetched 0 messages") {
		t.Fatalf("second sync said %q", r.stdout)
	}
}
