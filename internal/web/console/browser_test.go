package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// chromium finds Debian's chromium (or $JODMAI_CHROMIUM).
func chromium(t *testing.T) string {
	if p := os.Getenv("JODMAI_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser test skipped: chromium is not installed (apt-get install chromium, as .ci/run does)")
	return ""
}

// newChrome starts a headless chromium that only talks to 127.0.0.1: the
// closed network here refuses its background connections, and the test
// must not depend on any other host.
func newChrome(t *testing.T) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		// The test server's certificate is self-signed, for mail.example.org.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1100, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first run starts the browser, which lives as long as its
	// context: no timeout on that one.
	if err := chromedp.Do(ctx); err != nil {
		t.Skipf("browser test skipped: chromium does not start: %v", err)
	}
	ctx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// page drives one browser tab.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("browser: %s: %v", what, err)
	}
}

// text is an element's text now ("" when absent). DevTools evaluation is
// not the page's script: the CSP does not apply to it.
func (p *page) text(sel string) string {
	js := fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel)
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("browser: read %s: %v", sel, err)
	}
	return s
}

// wait waits until the element sel shows want (the page after a form
// post has loaded).
func (p *page) wait(sel, want string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := p.text(sel)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			loc, _ := chromedp.Run(p.ctx, chromedp.Location())
			p.shot("failed")
			p.t.Fatalf("browser: %s shows %q, want %q; at %s, page:\n%s", sel, got, want, loc, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitURL waits until the page's address contains want (a GET form has
// been submitted and the new page loaded).
func (p *page) waitURL(want string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(p.ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, want) {
			if ready, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.readyState`)); ready == "complete" {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("browser: at %s, want an address with %q", loc, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shot saves a full-page screenshot under /tmp for a person to look at.
func (p *page) shot(name string) {
	p.t.Helper()
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100)) // 100: png
	if err != nil {
		p.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	path := filepath.Join(os.TempDir(), "jodmai-console-"+name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", path)
}

// fill types into an empty form field.
func fill(sel, value string) chromedp.Action[chromedp.Void] {
	q := chromedp.CSS(sel)
	return chromedp.Steps(chromedp.WaitVisible(q), chromedp.SendKeys(q, value))
}

// click clicks the element of a CSS selector.
func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

func (p *page) login(address, password string) {
	p.t.Helper()
	p.run("open login", chromedp.Navigate(p.base+"/login"))
	p.wait("h1", "Log in")
	p.run("log in "+address,
		fill(`input[name=address]`, address),
		fill(`input[name=password]`, password),
		click(`form[action="/login"] button`),
	)
	p.wait("h1", "Your account")
}

// TestBrowser drives the console in a real chromium: an admin creates an
// account; its owner logs in, changes the password, makes an app password
// and logs in over IMAP with it, revokes it and the IMAP login fails; a
// form posted without its CSRF token is refused.
func TestBrowser(t *testing.T) {
	ctx := newChrome(t)
	env := start(t)
	p := &page{t: t, ctx: ctx, base: "https://" + env.Addr("https")}
	imapLogin := protocolLogins(env)["IMAP LOGIN"]

	p.run("open console", chromedp.Navigate(p.base+"/"))
	p.wait("h1", "Log in")
	p.shot("1-login")
	p.login(adminAddr, adminPass)

	p.run("open domains", click(`a[href="/admin/domains"]`))
	p.wait("h1", "Domains")
	p.run("add a domain",
		fill(`form[method=post][action="/admin/domains"] input[name=name]`, "school.example"),
		click(`form[method=post][action="/admin/domains"] button`),
	)
	p.wait("p.flash", "Domain school.example added")
	p.run("open accounts", click(`a[href="/admin/accounts"]`))
	p.wait("h1", "Accounts")
	p.run("add an account in the new domain",
		fill(`form[method=post][action="/admin/accounts"] input[name=address]`, "dan@school.example"),
		fill(`form[method=post][action="/admin/accounts"] input[name=password]`, "dan password 1"),
		click(`form[method=post][action="/admin/accounts"] button`),
	)
	p.wait("p.flash", "Account dan@school.example created")
	if err := imapLogin("dan@school.example", "dan password 1"); err != nil {
		t.Errorf("the account made in the console cannot log in over IMAP: %v", err)
	}
	p.run("back to accounts", click(`a[href="/admin/accounts"]`))
	p.wait("h1", "Accounts")
	p.run("add account",
		fill(`form[method=post][action="/admin/accounts"] input[name=address]`, "carol@example.org"),
		fill(`form[method=post][action="/admin/accounts"] input[name=password]`, "carol password 1"),
		fill(`form[method=post][action="/admin/accounts"] input[name=quota]`, "50MiB"),
		click(`form[method=post][action="/admin/accounts"] button`),
	)
	p.wait("p.flash", "Account carol@example.org created")
	p.shot("2-admin-account-created")
	p.run("back to accounts", click(`a[href="/admin/accounts"]`))
	p.wait("h1", "Accounts")
	p.shot("3-admin-accounts")
	p.run("add a catch-all",
		click(`a[href="/admin/aliases"]`),
		fill(`form[action="/admin/aliases"] input[name=address]`, "@example.org"),
		fill(`form[action="/admin/aliases"] input[name=targets]`, "carol@example.org, user@example.org"),
		click(`form[action="/admin/aliases"] button`),
	)
	p.wait("p.flash", "Alias @example.org added")
	p.shot("3b-admin-aliases")
	p.run("open domains", click(`a[href="/admin/domains"]`))
	p.wait("h1", "Domains")
	p.shot("3c-admin-domains")
	p.run("log out", click(`form.logout button`))
	p.wait("h1", "Log in")

	p.login("carol@example.org", "carol password 1")
	if strings.Contains(p.text("nav"), "Domains") {
		t.Error("a non-admin sees the admin links")
	}
	p.run("change password",
		fill(`form[action="/account/password"] input[name=current]`, "carol password 1"),
		fill(`form[action="/account/password"] input[name=new]`, "carol password 2"),
		fill(`form[action="/account/password"] input[name=confirm]`, "carol password 2"),
		click(`form[action="/account/password"] button`),
	)
	p.wait("p.flash", "Password changed")
	if err := imapLogin("carol@example.org", "carol password 2"); err != nil {
		t.Fatalf("IMAP login with the changed password: %v", err)
	}

	p.run("create app password",
		fill(`form[action="/account/app-passwords"] input[name=name]`, "phone"),
		click(`form[action="/account/app-passwords"] button`),
	)
	p.wait("p.flash", "App password “phone” created")
	secret := strings.TrimSpace(p.text("#secret"))
	p.shot("4-app-password-created")
	if err := imapLogin("carol@example.org", secret); err != nil {
		t.Fatalf("IMAP login with the app password %q: %v", secret, err)
	}

	p.run("revoke app password", click(`form[action="/account/app-passwords/revoke"] button`))
	p.wait("p.flash", "App password revoked")
	p.shot("5-app-password-revoked")
	if err := imapLogin("carol@example.org", secret); err == nil {
		t.Fatal("IMAP login with the revoked app password succeeded")
	}

	// Vacation reply and forwarding, through the nav links.
	p.run("open vacation", click(`nav a[href="/account/vacation"]`))
	p.wait("h1", "Vacation reply")
	p.run("turn the vacation reply on",
		click(`form[action="/account/vacation"] input[name=enabled]`),
		fill(`form[action="/account/vacation"] input[name=subject]`, "Away"),
		fill(`form[action="/account/vacation"] textarea[name=body]`, "Back on Monday."),
		click(`form[action="/account/vacation"] button`),
	)
	p.wait("p.flash", "Vacation reply saved and on.")
	p.shot("5b-vacation")
	p.run("open forwarding", click(`nav a[href="/account/forwarding"]`))
	p.wait("h1", "Forwarding")
	p.run("forward",
		fill(`form[action="/account/forwarding"] textarea[name=to]`, "carol@elsewhere.example"),
		click(`form[action="/account/forwarding"] button`),
	)
	p.wait("p.flash", "Forwarding saved.")
	p.shot("5c-forwarding")
	carol, _ := env.Users.Account(context.Background(), "carol@example.org")
	v, _ := env.Users.Vacation(context.Background(), carol.ID)
	f, _ := env.Users.Forward(context.Background(), carol.ID)
	if !v.Enabled || v.Subject != "Away" || v.Body != "Back on Monday." || len(f.To) != 1 || !f.KeepCopy {
		t.Fatalf("stored vacation %+v, forward %+v", v, f)
	}
	p.run("back to the account page", click(`nav a[href="/account"]`))
	p.wait("h1", "Your account")

	// A form whose token was taken out: the server refuses it.
	p.run("post without CSRF token",
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[string](`document.querySelector('form[action="/account/app-passwords"] input[name=csrf]').value = ""`)(ctx, t)
			return err
		}),
		fill(`form[action="/account/app-passwords"] input[name=name]`, "forged"),
		click(`form[action="/account/app-passwords"] button`),
	)
	p.wait("h1", "Forbidden")
	p.shot("6-csrf-refused")
	acc, _ := env.Users.Account(context.Background(), "carol@example.org")
	if aps, _ := env.Users.AppPasswords(context.Background(), acc.ID); len(aps) != 0 {
		t.Fatalf("the forged POST made app passwords: %+v", aps)
	}
	// And the admin pages are closed to carol.
	p.run("admin page as carol", chromedp.Navigate(p.base+"/admin/accounts"))
	p.wait("h1", "Forbidden")
}

// TestBrowserAdminPages drives the newer admin pages in chromium: the DNS
// check shows the one missing record, then all good once it is published;
// a deferred message is held, released and deleted from its queue page;
// the delivery log and the certificates and keys page render.
func TestBrowserAdminPages(t *testing.T) {
	ctx := newChrome(t)
	env, dns := dnsEnv(t, &busyRemote{})
	p := &page{t: t, ctx: ctx, base: "https://" + env.Addr("https")}
	id := enqueue(t, env, "bob@remote.test")
	p.login(adminAddr, adminPass)

	p.run("open DNS check", click(`a[href="/admin/dns"]`))
	p.wait("h1", "DNS check")
	p.wait("section.dns h2", "1 to fix")
	if got := p.text("tr.st-missing pre.record"); got != `_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"` {
		t.Errorf("record to publish: %q", got)
	}
	p.shot("7-dns-missing")
	dns.SetTXT("_dmarc.example.org", "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org")
	p.run("check again", chromedp.Reload())
	p.wait("section.dns h2", "all good")
	p.shot("8-dns-all-good")

	p.run("open queue", click(`a[href="/admin/queue"]`))
	p.wait("h1", "Queue")
	p.wait("table.queue", "bob@remote.test")
	wait.For(t, 10*time.Second, "the first attempt", func() bool {
		m, err := env.Queue.Show(context.Background(), id)
		return err == nil && m.Recipients[0].Attempts > 0
	})
	p.run("reload queue", chromedp.Reload())
	p.wait("table.queue", "451 4.3.0 busy")
	p.shot("9-queue")
	p.run("open message", click(`table.queue a[href^="/admin/queue/message"]`))
	p.wait("h1", "Queued message "+id)
	p.run("hold", click(`#hold`))
	p.wait("p.flash", "held.")
	p.wait("#msg-state", "held")
	if m, _ := env.Queue.Show(context.Background(), id); !m.Held {
		t.Error("not held after the Hold button")
	}
	p.shot("10-queue-held")
	p.run("release", click(`#release`))
	p.wait("p.flash", "released.")
	p.wait("#msg-state", "active")
	p.run("delete", click(`#delete`))
	p.wait("p.flash", "deleted.")
	p.wait("table.queue", "The queue is empty.")
	if _, err := env.Queue.Show(context.Background(), id); err == nil {
		t.Error("still queued after the Delete button")
	}
	p.shot("11-queue-deleted")

	p.run("open delivery log", click(`a[href="/admin/log"]`))
	p.wait("h1", "Delivery log")
	p.run("search the message", fill(`input[name=qid]`, id), click(`form[action="/admin/log"] button`))
	p.waitURL("qid=" + id)
	p.wait("table.log", "deferred")
	p.shot("12-delivery-log")

	p.run("open keys", click(`a[href="/admin/keys"]`))
	p.wait("h1", "Certificates and keys")
	p.wait("tr.cert", "self-signed")
	p.shot("13-certificates-and-keys")
}
