package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
)

const dkimMsg = "From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: signed\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@a.test>\r\n\r\nHello Bob,\r\nthis is signed.\r\n"

// onlyReader hides every method but Read, to test the spooling path.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func verify(t *testing.T, keys []Key, msg []byte) []dkim.Result {
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

func TestKeygenSignVerify(t *testing.T) {
	dir := t.TempDir()
	keys, err := Keygen(dir, "A.test")
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	if len(keys) != 2 || keys[0].Alg != "ed25519" || keys[1].Alg != "rsa" {
		t.Fatalf("keys %+v", keys)
	}
	month := time.Now().UTC().Format("200601")
	if keys[0].Selector != "j"+month+"e" || keys[1].Selector != "j"+month+"r" {
		t.Fatalf("selectors %q %q", keys[0].Selector, keys[1].Selector)
	}
	for _, k := range keys {
		if k.Domain != "a.test" || k.Name != k.Selector+"._domainkey.a.test." {
			t.Fatalf("key %+v", k)
		}
		if _, isdkim, err := dkim.ParseRecord(k.Record); err != nil || !isdkim {
			t.Fatalf("record %q: %v", k.Record, err)
		}
		fi, err := os.Stat(k.Path)
		if err != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(k.Path) != filepath.Join(dir, "dkim", "a.test") {
			t.Fatalf("key file %s: %v %v", k.Path, fi.Mode(), err)
		}
	}
	// A second keygen in the same month gets fresh selectors.
	more, err := Keygen(dir, "a.test")
	if err != nil || more[0].Selector != "j"+month+"e2" || more[1].Selector != "j"+month+"r2" {
		t.Fatalf("second keygen: %+v %v", more, err)
	}
	loaded, err := LoadKeys(dir, "a.test")
	if err != nil || len(loaded) != 4 {
		t.Fatalf("load: %d keys, %v", len(loaded), err)
	}
	keys = loaded

	s := &Signer{Dir: dir}
	for _, name := range []string{"readerat", "reader"} {
		t.Run(name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(dkimMsg)
			if name == "reader" {
				r = onlyReader{r}
			}
			sig, err := s.Sign(r)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			if n := bytes.Count(sig, []byte("DKIM-Signature:")); n != 4 {
				t.Fatalf("%d signatures, want 4:\n%s", n, sig)
			}
			if !bytes.HasSuffix(sig, []byte("\r\n")) || regexp.MustCompile(`[^\r]\n`).Match(sig) {
				t.Fatalf("signature lines not CRLF-ended: %q", sig)
			}
			signed := append(append([]byte(nil), sig...), dkimMsg...)
			results := verify(t, keys, signed)
			algs := map[string]int{}
			for _, r := range results {
				if r.Status != dkim.StatusPass {
					t.Fatalf("status %s: %v", r.Status, r.Err)
				}
				if !strings.EqualFold(r.Sig.Canonicalization, "relaxed/relaxed") {
					t.Fatalf("canonicalization %q", r.Sig.Canonicalization)
				}
				algs[r.Sig.AlgorithmSign]++
			}
			if algs["ed25519"] != 2 || algs["rsa"] != 2 {
				t.Fatalf("algorithms %v", algs)
			}

			// A changed body fails every signature.
			tampered := bytes.Replace(signed, []byte("this is signed"), []byte("this is forged"), 1)
			for _, r := range verify(t, keys, tampered) {
				if r.Status != dkim.StatusFail {
					t.Fatalf("tampered body: status %s", r.Status)
				}
			}
			// So does a changed Subject.
			tampered = bytes.Replace(signed, []byte("Subject: signed"), []byte("Subject: Signed"), 1)
			for _, r := range verify(t, keys, tampered) {
				if r.Status != dkim.StatusFail {
					t.Fatalf("tampered subject: status %s", r.Status)
				}
			}
		})
	}
}

func TestSignNoKey(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s := &Signer{Dir: dir, now: func() time.Time { return now }}
	msg := strings.Replace(dkimMsg, "alice@a.test", "alice@c.test", 1)
	sig, err := s.Sign(strings.NewReader(msg))
	if err != nil || sig != nil {
		t.Fatalf("no key: %q %v", sig, err)
	}
	// A key made while the server runs is used once the directory is
	// read again, at most a minute later.
	keys, err := Keygen(dir, "c.test")
	if err != nil {
		t.Fatal(err)
	}
	if sig, _ := s.Sign(strings.NewReader(msg)); sig != nil {
		t.Fatalf("directory read again within a minute")
	}
	now = now.Add(keyRecheck + time.Second)
	sig, err = s.Sign(strings.NewReader(msg))
	if err != nil || sig == nil {
		t.Fatalf("new key not picked up: %v", err)
	}
	for _, r := range verify(t, keys, append(sig, msg...)) {
		if r.Status != dkim.StatusPass {
			t.Fatalf("status %s: %v", r.Status, r.Err)
		}
	}
}

// TestSignErrors: a message that cannot be signed is an ErrNotSignable
// (the queue then sends it unsigned), with or without a key for its
// domain.
func TestSignErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Keygen(dir, "a.test"); err != nil {
		t.Fatal(err)
	}
	s := &Signer{Dir: dir}
	big := "From: a@a.test\r\nX-Big: " + strings.Repeat("x", maxSignHeader) + "\r\n\r\nbody\r\n"
	tests := []struct {
		name, msg string
		want      error
	}{
		{"no from", "To: b@b.test\r\n\r\nbody\r\n", ErrNotSignable},
		{"bad from", "From: nonsense\r\n\r\nbody\r\n", ErrNotSignable},
		{"empty from", "From:\r\n\r\nbody\r\n", ErrNotSignable},
		{"group without address", "From: undisclosed:;\r\n\r\nbody\r\n", ErrNotSignable},
		{"big header", big, ErrHeaderTooLarge},
		// mox's signer: exactly one From field (RFC 6376 §5.4 signs
		// From; two would let a verifier pick either).
		{"two from", "From: a@a.test\r\nFrom: b@a.test\r\n\r\nbody\r\n", ErrNotSignable},
		{"line without colon", "From: a@a.test\r\nnot a field\r\n\r\nbody\r\n", ErrNotSignable},
		{"no end of header", "From: a@a.test\r\nSubject: x\r\n", ErrNotSignable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.msg), onlyReader{strings.NewReader(tc.msg)}} {
				sig, err := s.Sign(r)
				if !errors.Is(err, tc.want) || !errors.Is(err, ErrNotSignable) {
					t.Fatalf("got %q, %v, want error %v", sig, err, tc.want)
				}
			}
		})
	}
}

func TestFromAddress(t *testing.T) {
	tests := []struct {
		hdr, local, domain string
	}{
		{"From: alice@a.test\r\n\r\n", "alice", "a.test"},
		{"Subject: x\r\nfrom:\r\n  \"Alice A\" <alice@A.Test>\r\nTo: b@b.test\r\n\r\n", "alice", "a.test"},
		{"From: a@x.test, b@y.test\r\n\r\n", "a", "x.test"},
		{"From: Ålice <ålice@bücher.test>\r\n\r\n", "ålice", "xn--bcher-kva.test"},
	}
	for _, tc := range tests {
		local, d, err := fromAddress([]byte(tc.hdr))
		if err != nil || local != tc.local || d.ASCII != tc.domain {
			t.Errorf("%q: got %q %q %v", tc.hdr, local, d.ASCII, err)
		}
	}
}

func FuzzFromAddress(f *testing.F) {
	f.Add([]byte("From: alice@a.test\r\n\r\n"))
	f.Add([]byte("from:\r\n \"A\" <a@b.test>\r\n\r\n"))
	f.Add([]byte("From: \r\n"))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		local, d, err := fromAddress(hdr)
		if err == nil && (d.ASCII == "" || strings.Contains(local, "\n")) {
			t.Fatalf("accepted %q as %q @ %q", hdr, local, d.ASCII)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte(dkimMsg))
	f.Add([]byte("no header end"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		hdr, err := readHeader(bufioReader(msg))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(msg, hdr) {
			t.Fatalf("header %q is not a prefix of the message", hdr)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(b), 16) }

func TestKeyDirRefusesBadNames(t *testing.T) {
	for _, d := range []string{"", "..", "a..b", "../x", "a/b", ".", "-a.test", "a_b.test", strings.Repeat("a", 64) + ".test"} {
		if _, err := Keygen(t.TempDir(), d); err == nil {
			t.Errorf("Keygen accepted %q", d)
		}
		if _, err := LoadKeys(t.TempDir(), d); err == nil {
			t.Errorf("LoadKeys accepted %q", d)
		}
	}
	for _, d := range []string{"a.test", "Example.COM.", "bücher.test", "x-1.y"} {
		if _, _, err := keyDir("/data", d); err != nil {
			t.Errorf("keyDir refused %q: %v", d, err)
		}
	}
}

// TestRotateRetire: a second Keygen adds selectors beside the first ones,
// both sign; a retired key signs no more, is kept under retired/, and its
// selector is not given again.
func TestRotateRetire(t *testing.T) {
	dir := t.TempDir()
	old, err := Keygen(dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Keygen(dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if fresh[0].Selector == old[0].Selector || fresh[1].Selector == old[1].Selector {
		t.Fatalf("rotation reused selectors: %s %s", fresh[0].Selector, old[0].Selector)
	}
	if keys, _ := LoadKeys(dir, "a.test"); len(keys) != 4 {
		t.Fatalf("%d keys after rotation, want 4", len(keys))
	}
	for _, k := range old {
		if err := RetireKey(dir, "a.test", k.Selector); err != nil {
			t.Fatalf("retire %s: %v", k.Selector, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "dkim", "a.test", "retired", filepath.Base(k.Path))); err != nil {
			t.Errorf("retired key not kept: %v", err)
		}
	}
	if err := RetireKey(dir, "a.test", old[0].Selector); !errors.Is(err, ErrNoKey) {
		t.Errorf("retire twice: %v, want ErrNoKey", err)
	}
	keys, err := LoadKeys(dir, "a.test")
	if err != nil || len(keys) != 2 || keys[0].Selector != fresh[0].Selector || keys[1].Selector != fresh[1].Selector {
		t.Fatalf("keys after retiring: %+v %v", keys, err)
	}
	s := &Signer{Dir: dir}
	sig, err := s.Sign(strings.NewReader(dkimMsg))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(sig, []byte("DKIM-Signature:")); n != 2 || bytes.Contains(sig, []byte("s="+old[0].Selector+";")) {
		t.Errorf("signatures after retiring: %s", sig)
	}
	// The retired selectors are not made again.
	again, err := Keygen(dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range again {
		for _, o := range old {
			if k.Selector == o.Selector {
				t.Errorf("retired selector %s given again", o.Selector)
			}
		}
	}
}
