package userdb

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

type pwVector struct {
	scheme, password, hash string
}

// dovecotVectors reads testdata/dovecot-pw.txt: hashes Dovecot made with
// "doveadm pw".
func dovecotVectors(t *testing.T) []pwVector {
	t.Helper()
	f, err := os.Open("testdata/dovecot-pw.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []pwVector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("bad line %q", line)
		}
		var pw string
		if err := json.Unmarshal([]byte(f[1]), &pw); err != nil {
			t.Fatalf("bad password in %q: %v", line, err)
		}
		out = append(out, pwVector{f[0], pw, f[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyDovecotHashes(t *testing.T) {
	for _, v := range dovecotVectors(t) {
		t.Run(v.scheme, func(t *testing.T) {
			checkVector(t, v)
		})
	}
}

func checkVector(t *testing.T, v pwVector) {
	t.Helper()
	if !VerifyPassword(v.hash, v.password) {
		t.Errorf("VerifyPassword(%q, %q) = false", v.hash, v.password)
	}
	// bcrypt reads 72 bytes of a password: longer ones differ beyond.
	if (len(v.password) < 72 || HashScheme(v.hash) != "BLF-CRYPT") && VerifyPassword(v.hash, v.password+"x") || VerifyPassword(v.hash, "") {
		t.Errorf("VerifyPassword(%q) accepts a wrong password", v.hash)
	}
	if !NeedsRehash(v.hash) {
		t.Errorf("NeedsRehash(%q) = false", v.hash)
	}
	if pw, ok, err := PlainFromHash(v.hash); ok {
		if err != nil || pw != v.password {
			t.Errorf("PlainFromHash(%q) = %q, %v", v.hash, pw, err)
		}
		if _, err := CheckHash(v.hash); err == nil {
			t.Errorf("CheckHash(%q) accepted a plain-text scheme", v.hash)
		}
		return
	}
	norm, err := CheckHash(v.hash)
	if err != nil {
		t.Errorf("CheckHash(%q): %v", v.hash, err)
	} else if !VerifyPassword(norm, v.password) {
		t.Errorf("normalized %q does not verify", norm)
	}
}

// TestDoveadmNow makes fresh hashes with the installed Dovecot, when there
// is one, and checks them: the committed vectors stay honest.
func TestDoveadmNow(t *testing.T) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Skip("doveadm not installed (Debian: apt-get install dovecot-core)")
	}
	for _, scheme := range []string{"ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "SSHA512", "CRAM-MD5", "PLAIN"} {
		for _, pw := range []string{"s3cret pass", "ünïcode ✓", strings.Repeat("long", 30)} {
			out, err := exec.Command(doveadm, "pw", "-s", scheme, "-p", pw).Output()
			if err != nil {
				t.Fatalf("doveadm pw -s %s: %v", scheme, err)
			}
			checkVector(t, pwVector{scheme, pw, strings.TrimSpace(string(out))})
		}
	}
}

// TestSHACryptSpec checks SHA-crypt against the test vectors of Drepper's
// specification, including clamped rounds and an over-long salt.
func TestSHACryptSpec(t *testing.T) {
	long := "a very much longer text to encrypt.  This one even stretches over morethan one line."
	for _, tc := range []struct{ setting, pw, want string }{
		{"$5$saltstring", "Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"$5$rounds=10000$saltstringsaltstring", "Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
		{"$5$rounds=5000$toolongsaltstring", "This is just a test", "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"},
		{"$5$rounds=1400$anotherlongsaltstring", long, "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"},
		{"$5$rounds=10$roundstoolow", "the minimum number is still observed", "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"},
		{"$6$saltstring", "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"$6$rounds=10000$saltstringsaltstring", "Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
		{"$6$rounds=5000$toolongsaltstring", "This is just a test", "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
		{"$6$rounds=1400$anotherlongsaltstring", long, "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
		{"$6$rounds=10$roundstoolow", "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
	} {
		p, _, ok := parseSHACrypt(tc.setting)
		if !ok {
			t.Fatalf("parse %q failed", tc.setting)
		}
		if got := shaCrypt(p, []byte(tc.pw)); got != tc.want {
			t.Errorf("shaCrypt(%q, %q)\n got %s\nwant %s", tc.setting, tc.pw, got, tc.want)
		}
		if !verifySHACrypt(tc.want, tc.pw) {
			t.Errorf("verifySHACrypt(%q) = false", tc.want)
		}
	}
}

func TestCheckHashRefuses(t *testing.T) {
	for _, h := range []string{
		"",
		"secret",
		"{MD4}abc",
		"{NOSUCH}abc",
		"{SHA512-CRYPT}$6$salt$tooshort",
		"{SHA512-CRYPT}$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZF9lUYzW5", // $5$ under the $6$ scheme
		"{SHA256-CRYPT}$5$rounds=999999999$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZF9lUYzW5",
		"{BLF-CRYPT}$2y$05$short",
		"{SSHA512}bm90IGJhc2U2NA==", // too short for a SHA-512 digest
		"{SSHA512}%%%",              // not base64
		"{SHA512}" + strings.Repeat("A", 10),
		"{CRAM-MD5}0123",
		"{CRAM-MD5}" + strings.Repeat("zz", 32),
		"{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), // 4 GiB
		"{ARGON2I}$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43),    // scheme mismatch
		"{SHA512-CRYPT}$6$ab\n$cd",
	} {
		if got, err := CheckHash(h); err == nil {
			t.Errorf("CheckHash(%q) = %q, want an error", h, got)
		}
		if VerifyPassword(h, "secret") || VerifyPassword(h, "") {
			t.Errorf("VerifyPassword(%q) matched", h)
		}
	}
	if _, err := CheckHash("{PLAIN}secret"); err == nil {
		t.Errorf("CheckHash({PLAIN}) accepted: the caller hashes plain text")
	}
	if _, err := CheckHash("{NOSUCH}abc"); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("CheckHash({NOSUCH}) = %v, want ErrUnknownScheme", err)
	}
}

func TestCheckHashNormalizes(t *testing.T) {
	own, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{own, own},
		{"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
			"{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"{sha512-crypt}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
			"{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	} {
		got, err := CheckHash(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CheckHash(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if NeedsRehash(own) {
		t.Errorf("NeedsRehash(our own hash) = true")
	}
}

func FuzzVerifyPassword(f *testing.F) {
	f.Add("{SHA512-CRYPT}$6$rounds=1000$salt$x", "pw")
	f.Add("{CRAM-MD5}38b57fd1a0c4b46c814aa05f20318edd71c455380655f2c0ac35c5b359528d29", "correct horse")
	f.Add("{SSHA512.HEX}00", "")
	f.Add("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA", "x")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		// Keep the fuzzer off expensive parameters: what CheckHash
		// accepts must verify without panicking.
		norm, err := CheckHash(hash)
		if err != nil {
			return
		}
		if strings.Contains(norm, "rounds=") || strings.Contains(norm, "argon2") || strings.HasPrefix(norm, "{BLF") {
			return
		}
		VerifyPassword(norm, pw)
	})
}
