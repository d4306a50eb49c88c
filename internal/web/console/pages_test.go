package console_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// startWith is start with options (the https listener is added).
func startWith(t testing.TB, opts testenv.Options) *testenv.Env {
	configure := opts.Configure
	opts.Configure = func(c *config.Config) {
		c.Listen.HTTPS = "127.0.0.1:0"
		if configure != nil {
			configure(c)
		}
	}
	env := testenv.StartWith(t, opts)
	env.AddUser(t, adminAddr, adminPass)
	if err := env.Users.SetAdmin(context.Background(), adminAddr, true); err != nil {
		t.Fatal(err)
	}
	env.AddUser(t, userAddr, userPass)
	return env
}

// busyRemote answers every delivery attempt 451 and counts them.
type busyRemote struct {
	mu    sync.Mutex
	calls int
}

func (b *busyRemote) Deliver(_ context.Context, m *remote.Message) []remote.Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	out := make([]remote.Result, len(m.Recipients))
	for i, r := range m.Recipients {
		out[i] = remote.Result{Addr: r.Addr, Code: 451, Enhanced: "4.3.0", Text: "busy", Host: "mx.remote.test"}
	}
	return out
}

func (b *busyRemote) attempts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// enqueue adds a message for rcpt to env's queue.
func enqueue(t testing.TB, env *testenv.Env, rcpt string) string {
	t.Helper()
	w, err := blob.Create(env.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Message-ID: <m1@example.org>\r\nSubject: hi\r\n\r\nbody\r\n")
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	id, err := env.Queue.Add(context.Background(), tmp, queue.Envelope{From: userAddr, Account: userAddr,
		Recipients: []remote.Recipient{{Addr: rcpt, Notify: "FAILURE"}}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestQueuePages: the queue list shows a deferred message with its
// recipient, size, attempts, next try and last error; its page holds,
// releases, retries and deletes it, as the jodmai queue commands do.
func TestQueuePages(t *testing.T) {
	rem := &busyRemote{}
	env := startWith(t, testenv.Options{Remote: rem})
	ctx := context.Background()
	id := enqueue(t, env, "bob@remote.test")
	wait.For(t, 10*time.Second, "one delivery attempt", func() bool {
		m, err := env.Queue.Show(ctx, id)
		return err == nil && m.Recipients[0].Attempts == 1
	})

	u := newBrowser(t, env)
	u.login(userAddr, userPass)
	if code := u.get("/admin/queue"); code != http.StatusForbidden {
		t.Errorf("queue page for a user: %d", code)
	}

	b := newBrowser(t, env)
	b.login(adminAddr, adminPass)
	if code := b.get("/admin/queue"); code != 200 {
		t.Fatalf("queue page: %d %s", code, b.body)
	}
	b.has(id, "bob@remote.test", "from "+userAddr, "451 4.3.0 busy (mx.remote.test)", `<td class="num">1</td>`, `href="/admin/queue"`, "Messages 1–1 of 1.")

	if code := b.get("/admin/queue/message?id=" + id); code != 200 {
		t.Fatalf("message page: %d %s", code, b.body)
	}
	b.has("bob@remote.test", "pending", "451 4.3.0 busy (mx.remote.test)", "active", `id="hold"`)

	// Hold: the message stays, is not attempted, and says so.
	if code := b.form("/admin/queue/hold", "id", id); code != 200 || b.last.Request.URL.Path != "/admin/queue/message" {
		t.Fatalf("hold: %d at %s", code, b.last.Request.URL)
	}
	b.has("Message "+id+" held.", "held: not attempted until released", `id="release"`)
	if m, _ := env.Queue.Show(ctx, id); !m.Held {
		t.Errorf("not held after the hold button: %+v", m)
	}
	b.get("/admin/queue")
	b.has(`<span class="tag held">held</span>`)

	// Release: attempted again at once.
	b.get("/admin/queue/message?id=" + id)
	b.form("/admin/queue/release", "id", id)
	b.has("Message " + id + " released.")
	if m, _ := env.Queue.Show(ctx, id); m.Held {
		t.Errorf("held after release: %+v", m)
	}
	wait.For(t, 10*time.Second, "the attempt after release", func() bool { return rem.attempts() >= 2 })

	b.form("/admin/queue/retry", "id", id)
	b.has("Message " + id + " made due now.")
	wait.For(t, 10*time.Second, "the attempt after retry", func() bool { return rem.attempts() >= 3 })

	// Delete: gone; another action on it says so.
	b.form("/admin/queue/delete", "id", id)
	if b.last.Request.URL.Path != "/admin/queue" {
		t.Errorf("delete went to %s", b.last.Request.URL)
	}
	b.has("Message "+id+" deleted.", "The queue is empty.")
	if _, err := env.Queue.Show(ctx, id); err == nil {
		t.Error("still queued after delete")
	}
	b.form("/admin/queue/hold", "id", id)
	b.has("No message " + id + " in the queue")
	if code := b.get("/admin/queue/message?id=" + id); code != http.StatusNotFound {
		t.Errorf("deleted message page: %d", code)
	}

	// The delivery log has its story, newest first.
	if code := b.get("/admin/log?qid=" + id); code != 200 {
		t.Fatalf("log: %d %s", code, b.body)
	}
	b.has("bob@remote.test", "m1@example.org", "result=deferred code=451 enhanced=4.3.0 host=mx.remote.test")
	if q, d := strings.Index(b.body, `ev-queued">`), strings.Index(b.body, `ev-deferred">`); q < 0 || d < 0 || d > q {
		t.Errorf("log for %s: queued at %d, deferred at %d (want deferred first):\n%s", id, q, d, b.body)
	}
	b.get("/admin/log?kind=queued&from=" + userAddr)
	if strings.Contains(b.body, `ev-deferred">`) || !strings.Contains(b.body, `ev-queued">`) {
		t.Errorf("kind=queued shows:\n%s", b.body)
	}
	b.get("/admin/log?to=nobody@elsewhere.test&since=1h")
	b.has("No events match.")
	if code := b.get("/admin/log?since=yesterday"); code != http.StatusBadRequest {
		t.Errorf("bad since: %d", code)
	}
	b.has("Since: ")
}

// TestQueuePaging: 51 messages make two pages, in either order.
func TestQueuePaging(t *testing.T) {
	env := startWith(t, testenv.Options{Remote: &busyRemote{}})
	var ids []string
	for i := range 51 {
		ids = append(ids, enqueue(t, env, fmt.Sprintf("r%d@remote.test", i)))
	}
	b := newBrowser(t, env)
	b.login(adminAddr, adminPass)
	b.get("/admin/queue")
	b.has("Messages 1–50 of 51.", "page=2")
	if strings.Contains(b.body, ids[50]) || !strings.Contains(b.body, ids[0]) {
		t.Error("oldest first: page 1 is not the 50 oldest")
	}
	b.get("/admin/queue?order=newest&page=2")
	b.has("Messages 51–51 of 51.", ids[0], "page=1")
	b.get("/admin/queue?order=newest")
	if !strings.Contains(b.body, ids[50]) || strings.Contains(b.body, ids[0]) {
		t.Error("newest first: page 1 is not the 50 newest")
	}
}

// dnsEnv starts a server whose DNS checks ask a test DNS server that
// has every record but DMARC, and whose MTA-STS policy fetch reaches its
// own https listener.
// rem, if set, is the fake remote the queue delivers to.
func dnsEnv(t *testing.T, rem remote.Deliverer) (*testenv.Env, *dnstest.Server) {
	s := dnstest.Start(t)
	var httpsAddr string
	var tlsConf *tls.Config
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: tlsConf}).DialContext(ctx, network, httpsAddr)
		},
	}}
	env := startWith(t, testenv.Options{Resolver: resolver.New(s.Addr(), nil), DNSCheckHTTPClient: hc, Remote: rem})
	httpsAddr, tlsConf = env.Addr("https"), env.ClientTLS()
	keys, err := remote.Keygen(env.DataDir, testenv.Domain)
	if err != nil {
		t.Fatal(err)
	}
	s.SetA("mail.example.org", "192.0.2.10")
	s.SetPTR("192.0.2.10", "mail.example.org")
	s.SetMX("example.org", dnstest.MX{Pref: 10, Host: "mail.example.org"})
	s.SetTXT("example.org", "v=spf1 mx ~all")
	s.SetTXT("mail.example.org", "v=spf1 a ~all")
	for _, k := range keys {
		s.SetTXT(k.Name, k.Record)
	}
	s.SetCNAME("mta-sts.example.org", "mail.example.org")
	s.SetTXT("_mta-sts.example.org", "v=STSv1; id="+dnsrecords.MTASTSID(dnsrecords.MTASTSPolicy(env.Config)))
	s.SetTXT("_smtp._tls.example.org", "v=TLSRPTv1; rua=mailto:postmaster@example.org")
	for _, rec := range dnsrecords.Records(env.Config, testenv.Domain) {
		if rec.Check != "SRV" {
			continue
		}
		var v dnstest.SRV
		if _, err := fmt.Sscanf(rec.Value, "%d %d %d %s", &v.Priority, &v.Weight, &v.Port, &v.Target); err != nil {
			t.Fatalf("SRV %q: %v", rec.Value, err)
		}
		s.SetSRV(rec.Name, v)
	}
	s.SetCNAME("autoconfig.example.org", "mail.example.org")
	s.SetCNAME("autodiscover.example.org", "mail.example.org")
	s.Known("_dmarc.example.org")
	return env, s
}

var recordRE = regexp.MustCompile(`<pre class="record">([^<]*)</pre>`)

// TestDNSCheckPage: the page shows the one missing record with the exact
// line to publish, then all good once it is published.
func TestDNSCheckPage(t *testing.T) {
	env, s := dnsEnv(t, nil)
	b := newBrowser(t, env)
	b.login(adminAddr, adminPass)
	if code := b.get("/admin/dns"); code != 200 {
		t.Fatalf("dns page: %d %s", code, b.body)
	}
	b.has("example.org", "1 to fix", `<tr class="st-missing"><td>DMARC`)
	if n := strings.Count(b.body, `class="st-ok"`); n < 10 {
		t.Errorf("%d records ok, want the rest:\n%s", n, b.body)
	}
	m := recordRE.FindAllStringSubmatch(b.body, -1)
	if len(m) != 1 || html.UnescapeString(m[0][1]) != `_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"` {
		t.Errorf("records to publish: %q\n%s", m, b.body)
	}

	s.SetTXT("_dmarc.example.org", "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org")
	b.get("/admin/dns?domain=example.org")
	b.has("all good")
	if strings.Contains(b.body, "to fix") || strings.Contains(b.body, `class="record"`) {
		t.Errorf("after publishing DMARC:\n%s", b.body)
	}
	if code := b.get("/admin/dns?domain=other.test"); code != http.StatusNotFound {
		t.Errorf("unknown domain: %d", code)
	}
}

var selectorRE = regexp.MustCompile(`<code>(j\d+[er]\d*)</code>`)

// TestKeysPage: the certificate in use with its names and source; DKIM
// keys generated, rotated (old and new sign side by side) and retired
// from the page, as jodmai dkim keygen and retire do.
func TestKeysPage(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	b.login(adminAddr, adminPass)
	if code := b.get("/admin/keys"); code != 200 {
		t.Fatalf("keys page: %d %s", code, b.body)
	}
	b.has("TLS certificates", testenv.Hostname, "self-signed", "days left", "DKIM: example.org", "No DKIM key: mail from example.org is sent unsigned.", "Generate keys")

	b.form("/admin/keys/dkim", "domain", "example.org")
	b.has("New DKIM keys for example.org", "Rotate: generate new keys")
	first := selectorRE.FindAllStringSubmatch(b.body, -1)
	keys, err := remote.LoadKeys(env.DataDir, "example.org")
	if err != nil || len(keys) != 2 || len(first) != 2 {
		t.Fatalf("after generate: keys %+v, page selectors %q, %v", keys, first, err)
	}
	shown := map[string]bool{}
	for _, m := range recordRE.FindAllStringSubmatch(b.body, -1) {
		shown[html.UnescapeString(m[1])] = true
	}
	for _, k := range keys {
		if !shown[k.ZoneRecord()] {
			t.Errorf("record of %s not shown as is: %v", k.Selector, shown)
		}
	}

	// Rotate: four keys, all signing until the old ones are retired.
	b.form("/admin/keys/dkim", "domain", "example.org")
	if keys, _ := remote.LoadKeys(env.DataDir, "example.org"); len(keys) != 4 {
		t.Fatalf("after rotate: %d keys", len(keys))
	}
	for _, m := range first {
		b.form("/admin/keys/dkim/retire", "domain", "example.org", "selector", m[1])
		b.has("DKIM selector " + m[1] + " of example.org retired")
	}
	keys, _ = remote.LoadKeys(env.DataDir, "example.org")
	if len(keys) != 2 || keys[0].Selector == first[0][1] || keys[1].Selector == first[1][1] {
		t.Fatalf("after retiring the old keys: %+v", keys)
	}
	if strings.Contains(b.body, "<code>"+first[0][1]+"</code>") {
		t.Error("retired selector still listed")
	}
	b.form("/admin/keys/dkim/retire", "domain", "example.org", "selector", first[0][1])
	b.has("No DKIM key " + first[0][1])
	// The last key stays: generate first.
	b.form("/admin/keys/dkim/retire", "domain", "example.org", "selector", keys[0].Selector)
	b.form("/admin/keys/dkim/retire", "domain", "example.org", "selector", keys[1].Selector)
	b.has("is the last key of example.org")
	if keys, _ := remote.LoadKeys(env.DataDir, "example.org"); len(keys) != 1 {
		t.Errorf("%d keys left, want 1", len(keys))
	}
	b.form("/admin/keys/dkim", "domain", "elsewhere.test")
	b.has("No local domain elsewhere.test.")
}
