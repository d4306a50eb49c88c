package smtpd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// delivered is one attempt the fake remote saw.
type delivered struct {
	msg  remote.Message
	body []byte
}

// fakeRemote accepts everything and records it.
type fakeRemote struct {
	mu   sync.Mutex
	seen []delivered
}

func (f *fakeRemote) Deliver(ctx context.Context, m *remote.Message) []remote.Result {
	body, _ := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size))
	f.mu.Lock()
	f.seen = append(f.seen, delivered{msg: *m, body: body})
	f.mu.Unlock()
	out := make([]remote.Result, len(m.Recipients))
	for i, r := range m.Recipients {
		out[i] = remote.Result{Addr: r.Addr, Delivered: true, Code: 250, Host: "mx." + m.Domain}
	}
	return out
}

// wait returns the attempts once there are n.
func (f *fakeRemote) wait(t *testing.T, n int) []delivered {
	t.Helper()
	var got []delivered
	wait.For(t, 10*time.Second, fmt.Sprintf("%d delivery attempts at the fake remote", n), func() bool {
		f.mu.Lock()
		got = append([]delivered(nil), f.seen...)
		f.mu.Unlock()
		return len(got) >= n
	})
	return got
}

func newQueueEnv(t *testing.T) (*testenv.Env, *fakeRemote) {
	t.Helper()
	rem := &fakeRemote{}
	env := testenv.StartWith(t, testenv.Options{Remote: rem})
	env.AddUser(t, alice, alicePass)
	env.AddUser(t, bob, bobPass)
	env.AddUser(t, carol, carolPass)
	return env, rem
}

func TestSubmissionQueuesRemote(t *testing.T) {
	env, rem := newQueueEnv(t)
	c := dial(t, env.Addr("submission"))
	caps := c.ehlo()
	if _, ok := caps["DSN"]; !ok {
		t.Fatalf("EHLO lacks DSN: %v", caps)
	}
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("MAIL FROM:<alice@example.org> RET=HDRS ENVID=env+2B42", 250, "")
	c.Expect("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Bx@remote.test", 250, "")
	c.Expect("RCPT TO:<Bob@Remote.Test>", 250, "") // the same address: one copy
	c.Expect("RCPT TO:<dan@other.test> NOTIFY=NEVER", 250, "")
	c.Expect("RCPT TO:<carol@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send(submitMsg + ".\r\n")
	text := c.WantReply(250, "2.0.0")
	id := text[strings.LastIndex(text, " ")+1:]

	got := rem.wait(t, 2)
	byDomain := map[string]delivered{}
	for _, d := range got {
		byDomain[d.msg.Domain] = d
	}
	r := byDomain["remote.test"]
	if len(r.msg.Recipients) != 1 || r.msg.Recipients[0] != (remote.Recipient{Addr: "bob@remote.test", Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;Bob+2Bx@remote.test"}) {
		t.Errorf("remote.test recipients %+v", r.msg.Recipients)
	}
	if o := byDomain["other.test"].msg.Recipients; len(o) != 1 || o[0] != (remote.Recipient{Addr: "dan@other.test", Notify: "NEVER"}) {
		t.Errorf("other.test recipients %+v", o)
	}
	for _, d := range got {
		if d.msg.From != alice || d.msg.EnvID != "env+42" || d.msg.Ret != "HDRS" {
			t.Errorf("envelope from %q envid %q ret %q", d.msg.From, d.msg.EnvID, d.msg.Ret)
		}
		// The exact body: our Received field, then the message as sent;
		// no Return-Path (RFC 5321 §4.4: final delivery adds it).
		body := string(d.body)
		if !strings.HasPrefix(body, "Received: from client.example.net") || !strings.HasSuffix(body, "\r\n"+submitMsg) || strings.Contains(body, "Return-Path") {
			t.Errorf("body sent:\n%s", body)
		}
		if !strings.Contains(body, " id "+id) {
			t.Errorf("the Received field does not carry the queue id %s", id)
		}
		if d.msg.Size != int64(len(d.body)) {
			t.Errorf("Size %d, body %d bytes", d.msg.Size, len(d.body))
		}
	}
	if n := len(inbox(t, env, carol)); n != 1 {
		t.Errorf("the local recipient got %d copies", n)
	}
	// NOTIFY=SUCCESS on bob: a "relayed" DSN reaches alice.
	wait.For(t, 10*time.Second, "alice's success DSN", func() bool { return len(inbox(t, env, alice)) > 0 })
	if msgs := inbox(t, env, alice); len(msgs) != 1 || !strings.Contains(string(msgs[0]), "Action: relayed") || !strings.Contains(string(msgs[0]), "Final-Recipient: rfc822; bob@remote.test") {
		t.Errorf("alice's success DSN: %d messages", len(msgs))
	}
}

func TestMXRelayStillRefused(t *testing.T) {
	env, rem := newQueueEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<sender@remote.example> RET=FULL", 250, "")
	c.Expect("RCPT TO:<victim@elsewhere.example>", 554, "5.7.1")
	c.Expect("RCPT TO:<victim@elsewhere.example> NOTIFY=NEVER", 554, "5.7.1")
	c.cmd5xx("DATA")
	// Even after AUTH is attempted: MX has none.
	c.Expect("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAGFsaWNlLXBhc3N3b3JkLTE=", 503, "5.5.1")
	c.Expect("RSET", 250, "")
	c.Expect("QUIT", 221, "")
	time.Sleep(50 * time.Millisecond)
	if ms, err := env.Queue.List(context.Background()); err != nil || len(ms) != 0 {
		t.Errorf("queue after relay attempts: %+v, %v", ms, err)
	}
	rem.mu.Lock()
	defer rem.mu.Unlock()
	if len(rem.seen) != 0 {
		t.Errorf("relayed: %+v", rem.seen)
	}
}

func TestMXAliasForwardQueued(t *testing.T) {
	env, rem := newQueueEnv(t)
	ctx := context.Background()
	if err := env.Users.AddAlias(ctx, "mixed@example.org", []string{bob, "someone@remote.example"}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.send("sender@far.example", []string{"mixed@example.org"}, simpleMsg, 250)
	got := rem.wait(t, 1)
	m := got[0].msg
	if m.From != "sender@far.example" || len(m.Recipients) != 1 || m.Recipients[0].Addr != "someone@remote.example" || m.Recipients[0].ORcpt != "rfc822;mixed@example.org" {
		t.Errorf("forwarded envelope %+v", m)
	}
	if m.Header != nil {
		t.Errorf("a relayed message was signed: %q", m.Header)
	}
	if n := len(inbox(t, env, bob)); n != 1 {
		t.Errorf("bob got %d copies", n)
	}
}

func TestDSNParameterErrors(t *testing.T) {
	env, _ := newQueueEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("MAIL FROM:<alice@example.org> RET=BOGUS", 501, "")
	c.Expect("MAIL FROM:<alice@example.org> ENVID=bad+zz", 501, "")
	// REQUIRETLS on a plaintext (loopback) session: not offered there
	// (RFC 8689 §4.1), so not implemented (RFC 5321 §4.1.1.11).
	c.Expect("MAIL FROM:<alice@example.org> REQUIRETLS", 555, "5.5.4")
	c.Expect("MAIL FROM:<alice@example.org>", 250, "")
	c.Expect("RCPT TO:<bob@remote.test> NOTIFY=NEVER,SUCCESS", 501, "")
	c.Expect("RCPT TO:<bob@remote.test> NOTIFY=SOMETIMES", 501, "")
	c.Expect("RCPT TO:<bob@remote.test> ORCPT=nosemicolon", 501, "")
	c.Expect("RCPT TO:<bob@remote.test> NOTIFY=delay", 250, "")
}

func TestRequireTLSQueued(t *testing.T) {
	env, rem := newQueueEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.StartTLS(env.ClientTLS())
	if _, ok := c.ehlo()["REQUIRETLS"]; !ok {
		t.Fatalf("REQUIRETLS not offered over TLS")
	}
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("MAIL FROM:<alice@example.org> REQUIRETLS BODY=8BITMIME", 250, "")
	c.Expect("RCPT TO:<bob@remote.test>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send(simpleMsg + ".\r\n")
	c.WantReply(250, "")
	m := rem.wait(t, 1)[0].msg
	if !m.RequireTLS || !m.Has8bit {
		t.Errorf("RequireTLS %v Has8bit %v, want both", m.RequireTLS, m.Has8bit)
	}
}

// failingQueue refuses every message.
type failingQueue struct{}

func (failingQueue) Add(context.Context, *blob.Temp, queue.Envelope) (string, error) {
	return "", errors.New("disk full")
}

func (failingQueue) NotifyDelivered(context.Context, *blob.Temp, queue.Envelope, []remote.Recipient) error {
	return errors.New("disk full")
}

// TestDeliveredDSN: a local recipient whose NOTIFY includes SUCCESS gets
// the sender a "delivered" DSN (RFC 3461 §6.2): into a local sender's
// INBOX, or queued with a null sender for a remote one; none without
// SUCCESS, none for a null sender.
func TestDeliveredDSN(t *testing.T) {
	env, rem := newQueueEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("MAIL FROM:<alice@example.org> RET=HDRS ENVID=track-1", 250, "")
	c.Expect("RCPT TO:<bob@example.org> NOTIFY=SUCCESS ORCPT=rfc822;bob@example.org", 250, "")
	c.Expect("RCPT TO:<carol@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("From: <alice@example.org>\r\nSubject: track me\r\n\r\nbody line\r\n.\r\n")
	c.WantReply(250, "")
	in := env.Inbox(t, alice)
	if len(in) != 1 {
		t.Fatalf("alice has %d messages, want the DSN", len(in))
	}
	dsn := string(in[0].Body)
	for _, want := range []string{"Return-Path: <>", "report-type=delivery-status", "Original-Envelope-Id: track-1",
		"Final-Recipient: rfc822; bob@example.org", "Action: delivered", "Status: 2.0.0", "Subject: track me"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "carol@example.org") || strings.Contains(dsn, "body line") {
		t.Errorf("DSN reports carol (no NOTIFY) or returns the body with RET=HDRS:\n%s", dsn)
	}

	// A remote sender on MX: the DSN goes to the queue with a null sender.
	mx := dial(t, env.Addr("smtp"))
	mx.ehlo()
	mx.Expect("MAIL FROM:<zed@remote.test>", 250, "")
	mx.Expect("RCPT TO:<carol@example.org> NOTIFY=SUCCESS,FAILURE", 250, "")
	mx.Expect("DATA", 354, "")
	mx.Send("Subject: from afar\r\n\r\nhi\r\n.\r\n")
	mx.WantReply(250, "")
	got := rem.wait(t, 1)[0]
	if got.msg.From != "" || len(got.msg.Recipients) != 1 || got.msg.Recipients[0].Addr != "zed@remote.test" ||
		!strings.Contains(string(got.body), "Action: delivered") {
		t.Fatalf("queued DSN: from %q to %v:\n%s", got.msg.From, got.msg.Recipients, got.body)
	}

	// Null sender: never a DSN about a DSN.
	mx.Expect("MAIL FROM:<>", 250, "")
	mx.Expect("RCPT TO:<carol@example.org> NOTIFY=SUCCESS", 250, "")
	mx.Expect("DATA", 354, "")
	mx.Send("Subject: a bounce\r\n\r\nhi\r\n.\r\n")
	mx.WantReply(250, "")
	time.Sleep(300 * time.Millisecond)
	if n := len(rem.wait(t, 1)); n != 1 {
		t.Errorf("%d queued DSNs, want still 1", n)
	}
}

func TestQueueFailureIs451(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeSubmission, func(s *smtpd.Server) { s.Queue = failingQueue{} })
	c := dial(t, h.addr)
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	c.send(alice, []string{"bob@remote.test"}, simpleMsg, 451)
}
