package imapd_test

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

// Interop with an independent client: emersion's go-imap v2 imapclient
// (v2.0.0-beta.8), against the whole server from testenv. That client has
// neither QRESYNC nor COMPRESS; QRESYNC is covered by the raw tests, and
// COMPRESS here by handing imapclient a connection that already speaks
// DEFLATE.

const interopUser = "dave@" + testenv.Domain

func interopEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Start(t)
	env.AddUser(t, interopUser, sessPass)
	return env
}

func interopDial(t *testing.T, env *testenv.Env, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialStartTLS(env.Addr("imap"), &imapclient.Options{TLSConfig: env.ClientTLS(), UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// interopSMTP sends a message to rcpt through the server's MX listener.
func interopSMTP(t *testing.T, env *testenv.Env, rcpt, subject string) {
	t.Helper()
	sc, err := smtp.Dial(env.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := sc.StartTLS(env.ClientTLS()); err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("sender@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Rcpt(rcpt); err != nil {
		t.Fatal(err)
	}
	w, err := sc.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, sessMessage(subject))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sc.Quit()
}

func TestInteropImapclient(t *testing.T) {
	env := interopEnv(t)
	env.Deliver(t, interopUser, []byte(sessMessage("first")))

	c := interopDial(t, env, nil)
	caps := c.Caps() // after STARTTLS, before login
	for _, want := range []imap.Cap{imap.CapIMAP4rev2, imap.CapLiteralPlus, imap.CapSASLIR, imap.Cap("AUTH=PLAIN")} {
		if !caps.Has(want) {
			t.Errorf("capabilities before login lack %s: %v", want, caps)
		}
	}
	if caps.Has(imap.CapStartTLS) {
		t.Error("STARTTLS offered again after STARTTLS")
	}
	if err := c.Authenticate(sasl.NewPlainClient("", interopUser, sessPass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIdle, imap.CapCondStore, imap.CapQResync, imap.CapID, imap.CapEnable, imap.Cap("COMPRESS=DEFLATE")} {
		if !caps.Has(want) {
			t.Errorf("capabilities lack %s", want)
		}
	}
	id, err := c.ID(&imap.IDData{Name: "imapclient", Version: "v2"}).Wait()
	if err != nil || id.Name != "jodmai" {
		t.Errorf("ID: %+v, %v", id, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 || sel.UIDNext != 2 || sel.UIDValidity == 0 || sel.HighestModSeq == 0 {
		t.Errorf("SELECT: %+v", sel)
	}

	// CONDSTORE resync: a change made elsewhere raises HIGHESTMODSEQ.
	acc, err := env.Users.Account(context.Background(), interopUser)
	if err != nil {
		t.Fatal(err)
	}
	a, err := env.Store.Account(context.Background(), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagSeen, 1)
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	sel2, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true, ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel2.HighestModSeq <= sel.HighestModSeq || sel2.UIDValidity != sel.UIDValidity {
		t.Errorf("after a flag change: HIGHESTMODSEQ %d -> %d, UIDVALIDITY %d -> %d", sel.HighestModSeq, sel2.HighestModSeq, sel.UIDValidity, sel2.UIDValidity)
	}
	t.Run("fetch changedsince", func(t *testing.T) {
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: sel.HighestModSeq}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || len(msgs[0].Flags) != 1 || msgs[0].Flags[0] != imap.FlagSeen || msgs[0].ModSeq <= sel.HighestModSeq {
			t.Errorf("FETCH CHANGEDSINCE: %+v", msgs)
		}
	})
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// TestInteropImapclientIdle: imapclient idles; a message sent over SMTP
// arrives as EXISTS.
func TestInteropImapclientIdle(t *testing.T) {
	env := interopEnv(t)
	exists := make(chan uint32, 10)
	c := interopDial(t, env, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if err := c.Login(interopUser, sessPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	interopSMTP(t, env, interopUser, "while idling")
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestInteropImapclientCompress: imapclient speaks to a session after
// COMPRESS DEFLATE, through a connection that inflates what it reads and
// deflates what it writes. The connection starts with a PREAUTH greeting
// of its own, standing in for the server's, which came before COMPRESS.
func TestInteropImapclientCompress(t *testing.T) {
	env := interopEnv(t)
	env.Deliver(t, interopUser, []byte(sessMessage("compressed")))
	raw, err := tls.Dial("tcp", env.Addr("imaps"), env.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	sc := sessNewConn(t, raw)
	sc.login(interopUser, sessPass)
	sc.OK("COMPRESS DEFLATE")
	if n := sc.Buffered(); n != 0 {
		t.Fatalf("%d bytes after the COMPRESS reply", n)
	}
	zw, err := flate.NewWriter(raw, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	zr := bufio.NewReader(flate.NewReader(raw))
	zc := &interopDeflateConn{Conn: raw, r: io.MultiReader(strings.NewReader("* PREAUTH [CAPABILITY IMAP4rev1 IDLE] compressed\r\n"), zr), zw: zw}
	exists := make(chan uint32, 10)
	c := imapclient.New(zc, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Errorf("SELECT: %+v", sel)
	}
	if _, err := c.Capability().Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	interopSMTP(t, env, interopUser, "second")
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("EXISTS %d, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// interopDeflateConn is a net.Conn that reads from r (the inflated
// stream) and writes through zw, flushing every write.
type interopDeflateConn struct {
	net.Conn
	r  io.Reader
	mu sync.Mutex
	zw *flate.Writer
}

func (c *interopDeflateConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *interopDeflateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.zw.Write(p)
	if err == nil {
		err = c.zw.Flush()
	}
	return n, err
}
