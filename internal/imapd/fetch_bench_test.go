package imapd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

// fetchBenchEnv starts a server whose INBOX holds n copies of raw, filed
// in one store transaction (they share one body file).
func fetchBenchEnv(b *testing.B, n int, raw string) (*testenv.Env, *fetchConn) {
	b.Helper()
	env := fetchNewEnv(b)
	ctx := context.Background()
	acc, err := env.Users.Account(ctx, fetchUser)
	if err != nil {
		b.Fatal(err)
	}
	w, err := env.Store.NewBody()
	if err != nil {
		b.Fatal(err)
	}
	w.Write([]byte(raw))
	tmp, err := w.Finish()
	if err != nil {
		b.Fatal(err)
	}
	defer tmp.Remove()
	targets := make([]store.Target, n)
	for i := range targets {
		targets[i] = store.Target{AccountID: acc.ID}
	}
	if err := env.Store.Deliver(ctx, tmp, targets); err != nil {
		b.Fatal(err)
	}
	fc := fetchDial(b, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	return env, fc
}

// run sends a command and reads its responses without keeping them,
// returning the number of untagged lines and bytes read.
func (fc *fetchConn) run(b *testing.B, cmd string) (lines, nbytes int) {
	tag := fc.Tag()
	fc.NetConn().SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(fc.NetConn(), tag+" "+cmd+"\r\n"); err != nil {
		b.Fatal(err)
	}
	br := fc.Reader()
	prefix := []byte(tag + " ")
	for {
		l, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			nbytes += len(l)
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		nbytes += len(l)
		if len(l) >= len(prefix) && string(l[:len(prefix)]) == string(prefix) {
			if !strings.HasPrefix(string(l[len(prefix):]), "OK") {
				b.Fatalf("%s: %s", cmd, l)
			}
			return lines, nbytes
		}
		lines++
		if !bytes.HasSuffix(l, []byte("}\r\n")) {
			continue
		}
		if m := fetchLiteralRE.FindSubmatch(l); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			if _, err := br.Discard(n); err != nil {
				b.Fatal(err)
			}
			nbytes += n
			lines-- // the rest of the line follows
		}
	}
}

// fetchBenchMessage is a typical small message (about 2 KB).
var fetchBenchMessage = fetchCRLF(`From: Alice Example <alice@example.com>
To: Bob <bob@example.org>, carol@example.net
Subject: Benchmark message with a reasonably long subject line
Date: Tue, 4 Feb 2025 09:30:00 -0800
Message-ID: <bench@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

`) + strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n", 12) + fetchCRLF(`--b
Content-Type: text/html; charset=utf-8

<html><body><p>Lorem ipsum dolor sit amet</p></body></html>
--b--
`)

func BenchmarkFetchFlags(b *testing.B) {
	const n = 10000
	_, fc := fetchBenchEnv(b, n, fetchBenchMessage)
	b.ResetTimer()
	for range b.N {
		if lines, _ := fc.run(b, "FETCH 1:* (UID FLAGS)"); lines != n {
			b.Fatalf("%d responses", lines)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

func BenchmarkFetchEnvelope(b *testing.B) {
	const n = 2000
	_, fc := fetchBenchEnv(b, n, fetchBenchMessage)
	for _, bc := range []struct{ name, items string }{
		{"envelope", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"},
		{"bodystructure", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"},
		{"headerfields", "(FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				if lines, _ := fc.run(b, "UID FETCH 1:* "+bc.items); lines != n {
					b.Fatalf("%d responses", lines)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
		})
	}
}

func BenchmarkFetchBody(b *testing.B) {
	const n = 200
	big := strings.Replace(fetchBenchMessage, "Lorem", strings.Repeat("x", 20000)+"\r\nLorem", 1)
	_, fc := fetchBenchEnv(b, n, big)
	b.SetBytes(int64(n * len(big)))
	b.ResetTimer()
	for range b.N {
		if lines, _ := fc.run(b, fmt.Sprintf("UID FETCH 1:%d BODY.PEEK[]", n)); lines != n {
			b.Fatalf("%d responses", lines)
		}
	}
}

func BenchmarkSearchBody(b *testing.B) {
	const n = 2000
	_, fc := fetchBenchEnv(b, n, fetchBenchMessage)
	b.ResetTimer()
	for range b.N {
		fc.run(b, "SEARCH BODY nowhere")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

func BenchmarkSearchFlags(b *testing.B) {
	const n = 10000
	_, fc := fetchBenchEnv(b, n, fetchBenchMessage)
	b.ResetTimer()
	for range b.N {
		fc.run(b, "UID SEARCH UNSEEN UNDELETED")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}
