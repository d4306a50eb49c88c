package smtpd_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/testenv"
)

// Issue 16: a header field that a signature or check needs and that is
// missing must never get a 4xx. Submission adds From, Date and Message-ID
// when missing (RFC 6409 §8); MX stores such a message as received.

// submit sends msg from alice over submission to rcpts and returns the
// queue id of the 250 reply.
func submit(t *testing.T, env *testenv.Env, msg string, rcpts ...string) string {
	t.Helper()
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	text := c.send(alice, rcpts, msg, 250)
	return text[strings.LastIndex(text, " ")+1:]
}

// addedFields matches the fields submission adds to alice's message with
// the queue id id.
func addedFields(id string) string {
	return `From: <alice@example\.org>\r\n` +
		`Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n` +
		`Message-ID: <` + id + `@` + regexp.QuoteMeta(testenv.Hostname) + `>\r\n`
}

func TestSubmissionAddsMissingFields(t *testing.T) {
	env := newEnv(t)
	id := submit(t, env, "Subject: bare\r\n\r\nbody\r\n", bob)
	_, rest := oneMessage(t, env, bob)
	if want := `^Subject: bare\r\n` + addedFields(id) + `\r\nbody\r\n$`; !regexp.MustCompile(want).MatchString(rest) {
		t.Errorf("stored %q, want %s", rest, want)
	}

	// A header section that ends with the message (BDAT, no line end):
	// the fields and the empty line follow it.
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("MAIL FROM:<alice@example.org>", 250, "")
	c.Expect("RCPT TO:<carol@example.org>", 250, "")
	c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", len("Subject: header only"), "Subject: header only"))
	text := c.WantReply(250, "queued as")
	id = text[strings.LastIndex(text, " ")+1:]
	_, rest = oneMessage(t, env, carol)
	if want := `^Subject: header only\r\n` + addedFields(id) + `\r\n$`; !regexp.MustCompile(want).MatchString(rest) {
		t.Errorf("stored %q, want %s", rest, want)
	}

	// What the message has is kept: only Message-ID is added here.
	msg := "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nfrom: Alice <alice@example.org>\r\n\r\nx\r\n"
	id = submit(t, env, msg, alice)
	_, rest = oneMessage(t, env, alice)
	if want := strings.Replace(msg, "\r\n\r\n", "\r\nMessage-ID: <"+id+"@"+testenv.Hostname+">\r\n\r\n", 1); rest != want {
		t.Errorf("stored %q, want %q", rest, want)
	}
}

// TestMXNoFrom: on MX a message without From (or Date, or Message-ID) is
// accepted for local delivery and stored as received (RFC 5321 §6.4: no
// repairs by a delivery server).
func TestMXNoFrom(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	msg := "Subject: no from\r\n\r\nbody\r\n"
	c.send("x@remote.example", []string{alice}, msg, 250)
	if _, rest := oneMessage(t, env, alice); rest != msg {
		t.Errorf("stored %q, want %q", rest, msg)
	}
}

// TestSubmissionNoFromRemote: the case of issue 16. A message without
// From, submitted for a remote recipient, was answered 451 4.3.0 (DKIM
// signing failed); it is now taken, with a From of the authenticated
// address, and signed when the domain has a key. A From that cannot be
// signed for, or no key, means no signature, never a refusal.
func TestSubmissionNoFromRemote(t *testing.T) {
	t.Run("no key", func(t *testing.T) {
		env, rem := newQueueEnv(t)
		id := submit(t, env, "Subject: no from\r\n\r\nhi\r\n", "bob@remote.test")
		d := rem.wait(t, 1)[0]
		if d.msg.Header != nil {
			t.Errorf("signed without a key: %q", d.msg.Header)
		}
		if want := `\r\nSubject: no from\r\n` + addedFields(id) + `\r\nhi\r\n$`; !regexp.MustCompile(want).Match(d.body) {
			t.Errorf("sent %q, want %s", d.body, want)
		}
	})
	t.Run("key", func(t *testing.T) {
		env, rem := newQueueEnv(t)
		keys, err := remote.Keygen(env.DataDir, "example.org")
		if err != nil {
			t.Fatal(err)
		}
		submit(t, env, "Subject: no from\r\n\r\nhi\r\n", "bob@remote.test")
		d := rem.wait(t, 1)[0]
		results := verifyDKIM(t, keys, append(append([]byte(nil), d.msg.Header...), d.body...))
		if len(results) != len(keys) {
			t.Fatalf("%d signatures, want %d:\n%s", len(results), len(keys), d.msg.Header)
		}
		for _, r := range results {
			if r.Status != dkim.StatusPass || r.Sig.Domain.ASCII != "example.org" {
				t.Errorf("signature %s by %s: %v", r.Status, r.Sig.Domain, r.Err)
			}
		}
	})
	t.Run("unsignable", func(t *testing.T) {
		env, rem := newQueueEnv(t)
		if _, err := remote.Keygen(env.DataDir, "example.org"); err != nil {
			t.Fatal(err)
		}
		msgs := []string{
			"From: nonsense\r\nSubject: bad from\r\n\r\nhi\r\n",
			"From: alice@example.org\r\nFrom: alice+2@example.org\r\nSubject: two from\r\n\r\nhi\r\n",
			"From: undisclosed:;\r\nSubject: group\r\n\r\nhi\r\n",
		}
		for _, msg := range msgs {
			submit(t, env, msg, "bob@remote.test")
		}
		for _, d := range rem.wait(t, len(msgs)) {
			if d.msg.Header != nil {
				t.Errorf("signed: %q", d.msg.Header)
			}
		}
	})
}

func verifyDKIM(t *testing.T, keys []remote.Key, msg []byte) []dkim.Result {
	t.Helper()
	res := dns.MockResolver{TXT: map[string][]string{}}
	for _, k := range keys {
		res.TXT[k.Name] = []string{k.Record}
	}
	results, err := dkim.Verify(context.Background(), slog.New(slog.DiscardHandler), res, false, dkim.DefaultPolicy, bytes.NewReader(msg), true)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return results
}
