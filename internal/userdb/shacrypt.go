package userdb

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
	"strconv"
	"strings"
)

// SHA-crypt, the "$5$" (SHA-256) and "$6$" (SHA-512) schemes of glibc's
// crypt(3), as Dovecot writes them for {SHA256-CRYPT} and {SHA512-CRYPT}.
// The algorithm is Ulrich Drepper's published specification ("Unix crypt
// using SHA-256 and SHA-512", 2008); the step numbers below are its.

const (
	shaCryptRoundsDefault = 5000
	shaCryptRoundsMin     = 1000
	shaCryptRoundsMax     = 999999999
	shaCryptSaltMax       = 16
	// shaCryptRoundsLimit bounds the rounds a stored hash may ask for at
	// verification: the specification allows a billion, which would make
	// one login (or one import line) a denial of service. glibc's default
	// is 5,000; Dovecot writes 5,000.
	shaCryptRoundsLimit = 1 << 20
)

// crypt64 is crypt(3)'s base-64 alphabet.
const crypt64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// The byte order in which the final digest is encoded: groups of three
// bytes, each giving four characters (the last group fewer).
var (
	sha256CryptOrder = [][3]int{{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14}, {15, 25, 5}, {6, 16, 26}, {27, 7, 17}, {18, 28, 8}, {9, 19, 29}}
	sha512CryptOrder = [][3]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10},
		{53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41}}
)

// shaCryptParams are the parts of a "$5$" or "$6$" hash.
type shaCryptParams struct {
	id       string // "5" or "6"
	rounds   int
	explicit bool // "rounds=N$" was given (and is echoed in the result)
	salt     string
}

// parseSHACrypt splits a SHA-crypt string ("$6$[rounds=N$]salt[$hash]")
// into its parameters and the encoded hash ("" when absent).
func parseSHACrypt(s string) (shaCryptParams, string, bool) {
	var p shaCryptParams
	switch {
	case strings.HasPrefix(s, "$5$"):
		p.id = "5"
	case strings.HasPrefix(s, "$6$"):
		p.id = "6"
	default:
		return p, "", false
	}
	s = s[3:]
	p.rounds = shaCryptRoundsDefault
	if r, ok := strings.CutPrefix(s, "rounds="); ok {
		i := strings.IndexByte(r, '$')
		if i < 0 {
			return p, "", false
		}
		n, err := strconv.ParseUint(r[:i], 10, 64)
		if err != nil {
			return p, "", false
		}
		// Step "rounds": out-of-range values are clamped, not refused.
		p.rounds = int(min(max(n, shaCryptRoundsMin), shaCryptRoundsMax))
		p.explicit = true
		s = r[i+1:]
	}
	salt, enc, _ := strings.Cut(s, "$")
	if len(salt) > shaCryptSaltMax {
		salt = salt[:shaCryptSaltMax]
	}
	if strings.ContainsAny(salt, "$:\n") {
		return p, "", false
	}
	p.salt = salt
	return p, enc, true
}

// shaCrypt computes the full SHA-crypt string of password with p.
func shaCrypt(p shaCryptParams, password []byte) string {
	newHash, order := sha256.New, sha256CryptOrder
	if p.id == "6" {
		newHash, order = sha512.New, sha512CryptOrder
	}
	salt := []byte(p.salt)
	size := newHash().Size()

	// Steps 4-8: digest B = H(P S P).
	h := newHash()
	h.Write(password)
	h.Write(salt)
	h.Write(password)
	b := h.Sum(nil)

	// Steps 1-3, 9-12: digest A.
	h = newHash()
	h.Write(password)
	h.Write(salt)
	writeRepeated(h, b, len(password))
	for n := len(password); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(password)
		}
	}
	a := h.Sum(nil)

	// Steps 13-16: the byte sequence P of len(password) bytes.
	h = newHash()
	for range password {
		h.Write(password)
	}
	pseq := repeatTo(h.Sum(nil), len(password))

	// Steps 17-20: the byte sequence S of len(salt) bytes.
	h = newHash()
	for range 16 + int(a[0]) {
		h.Write(salt)
	}
	sseq := repeatTo(h.Sum(nil), len(salt))

	// Step 21: the rounds.
	c := a
	for i := range p.rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(pseq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sseq)
		}
		if i%7 != 0 {
			h.Write(pseq)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pseq)
		}
		c = h.Sum(c[:0])
	}

	// Step 22: the result string.
	var out strings.Builder
	out.WriteString("$" + p.id + "$")
	if p.explicit {
		out.WriteString("rounds=" + strconv.Itoa(p.rounds) + "$")
	}
	out.WriteString(p.salt)
	out.WriteByte('$')
	for _, g := range order {
		encode24(&out, c[g[0]], c[g[1]], c[g[2]], 4)
	}
	if size == 32 {
		encode24(&out, 0, c[31], c[30], 3)
	} else {
		encode24(&out, 0, 0, c[63], 2)
	}
	return out.String()
}

func writeRepeated(h hash.Hash, b []byte, n int) {
	for ; n > len(b); n -= len(b) {
		h.Write(b)
	}
	h.Write(b[:n])
}

func repeatTo(b []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}

func encode24(out *strings.Builder, b2, b1, b0 byte, n int) {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	for range n {
		out.WriteByte(crypt64[w&0x3f])
		w >>= 6
	}
}

// verifySHACrypt checks password against a "$5$" or "$6$" string in
// constant time (for strings of the same length).
func verifySHACrypt(stored, password string) bool {
	p, enc, ok := parseSHACrypt(stored)
	if !ok || enc == "" || p.rounds > shaCryptRoundsLimit {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(shaCrypt(p, []byte(password))), []byte(stored)) == 1
}

// validSHACrypt reports whether s is a complete SHA-crypt string we can
// verify: known id, rounds within our limit, a hash of the right length
// in the crypt alphabet.
func validSHACrypt(s string) bool {
	p, enc, ok := parseSHACrypt(s)
	if !ok || p.rounds > shaCryptRoundsLimit {
		return false
	}
	want := 43
	if p.id == "6" {
		want = 86
	}
	if len(enc) != want {
		return false
	}
	for i := 0; i < len(enc); i++ {
		if strings.IndexByte(crypt64, enc[i]) < 0 {
			return false
		}
	}
	return true
}
