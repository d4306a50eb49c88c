package pop3d_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
)

// FuzzSession feeds arbitrary client input to a real session, over a
// loopback connection, against a real on-disk store, and checks the
// transcript: the server must not crash, every reply must be +OK, -ERR or a
// SASL continuation, and exactly the replies that should be multi-line
// are, properly terminated.
//
// Inputs that log in cost an argon2id hash each, which makes minimizing
// them slow; run with a short -fuzzminimizetime:
//
//	go test -run XXX -fuzz FuzzSession -fuzztime 60s -fuzzminimizetime 2s ./internal/pop3d
func FuzzSession(f *testing.F) {
	// No throttle delays or lockouts: the fuzzer fails logins all the time.
	h := newHarness(f, harnessOptions{policy: &auth.Policy{Window: time.Minute}, timeout: 10 * time.Second})
	h.addUser(alice, alicePass)
	if err := h.users.SetAPOPSecret(context.Background(), alice, "apop-secret-1"); err != nil {
		f.Fatal(err)
	}
	login := "USER " + alice + "\r\nPASS " + alicePass + "\r\n"
	for _, seed := range []string{
		"CAPA\r\n" + login + "STAT\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 1\r\nRETR 1\r\nTOP 2 0\r\nTOP 3 1\r\nDELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		login + "DELE 1\r\nDELE 2\r\nRETR 1\r\nLIST\r\nQUIT\r\n",
		login + "RETR 3\r\nRETR 4\r\nDELE 3\r\n", // dropped: nothing deleted
		"AUTH PLAIN " + b64("\x00"+alice+"\x00"+alicePass) + "\r\nSTAT\r\nRETR 2\r\nQUIT\r\n",
		"AUTH PLAIN\r\n" + b64(alice+"\x00"+alice+"\x00"+alicePass) + "\r\nUIDL\r\n",
		"AUTH LOGIN\r\n" + b64(alice) + "\r\n" + b64(alicePass) + "\r\nLIST\r\n",
		"AUTH LOGIN\r\n*\r\nAUTH PLAIN =\r\nAUTH\r\nAUTH X\r\n",
		"APOP " + alice + " c4c9334bac560ecc979e58001b3e22fb\r\nQUIT\r\n",
		"user " + alice + "\npass " + alicePass + "\nstat\ntop 1 0\nquit\n",
		"STLS\r\nCAPA\r\n",
		"\x00\xff\r\nUSER\r\nPASS\r\n\r\n" + strings.Repeat("A", 600) + "\r\nNOOP\r\n",
		login + "TOP 1 -1\r\nRETR 0\r\nRETR 99999999999\r\nLIST 1 2\r\nDELE x\r\n",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		ht := *h
		ht.t = t
		if _, _, msgs := ht.inbox(alice); len(msgs) < 3 {
			ht.deliver(alice, msg("fuzz", "body\r\n.dot\r\n..\r\n.\r\nend\r\n"))
			ht.deliver(alice, "no header\r\n")
			ht.deliver(alice, msg("x", ""))
		}
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() {
			c.Write(in) // the server may close early; that is fine
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("read: %v", err)
		}
		checkTranscript(t, in, out)
	})
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// checkTranscript checks the server's output against the client's input.
func checkTranscript(t *testing.T, in, out []byte) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(out))
	readLine := func() (string, bool) {
		s, err := r.ReadString('\n')
		if err == io.EOF {
			if s != "" {
				t.Fatalf("unterminated line %q\ntranscript:\n%s", s, out)
			}
			return "", false
		}
		if !strings.HasSuffix(s, "\r\n") {
			t.Fatalf("line %q does not end in CRLF\ntranscript:\n%s", s, out)
		}
		return s[:len(s)-2], true
	}
	if g, ok := readLine(); !ok || !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting %q", g)
	}
	cmds := bytes.Split(in, []byte("\n"))
	cmds = cmds[:len(cmds)-1] // the last fragment has no line end: never answered
	sasl := false
	for _, cmd := range cmds {
		line := strings.TrimSuffix(string(cmd), "\r")
		resp, ok := readLine()
		if !ok {
			return // the server closed the connection (QUIT, errors, ...)
		}
		switch {
		case strings.HasPrefix(resp, "+OK"):
			if !sasl && isMultiline(line) {
				for {
					d, ok := readLine()
					if !ok {
						t.Fatalf("multi-line response to %q not terminated\ntranscript:\n%s", line, out)
					}
					if d == "." {
						break
					}
				}
			}
			if verb, _, _ := strings.Cut(line, " "); !sasl && verb == strings.ToUpper(verb) && strings.EqualFold(verb, "STLS") {
				return // TLS from here on
			}
			sasl = false
		case strings.HasPrefix(resp, "-ERR"):
			sasl = false
		case strings.HasPrefix(resp, "+ "):
			verb, _, _ := strings.Cut(line, " ")
			if !sasl && !strings.EqualFold(verb, "AUTH") {
				t.Fatalf("continuation %q to %q\ntranscript:\n%s", resp, line, out)
			}
			sasl = true
		default:
			t.Fatalf("reply %q to %q is neither +OK, -ERR nor a continuation\ntranscript:\n%s", resp, line, out)
		}
	}
	if rest, _ := io.ReadAll(r); len(rest) > 0 {
		t.Fatalf("unexpected output after the last reply: %q\ntranscript:\n%s", rest, out)
	}
}

// isMultiline reports whether a +OK reply to line is followed by data
// (RFC 1939, RFC 2449 CAPA, and AUTH's mechanism list).
func isMultiline(line string) bool {
	verb, args, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "CAPA", "RETR", "TOP":
		return true
	case "LIST", "UIDL":
		return len(strings.Fields(args)) == 0
	case "AUTH":
		return args == ""
	}
	return false
}
