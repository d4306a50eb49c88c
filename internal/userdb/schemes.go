package userdb

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Password schemes.
//
// Accounts made here get an argon2id PHC string (HashPassword). Accounts
// imported from another server (user import) keep the hash they came with,
// in the scheme it was made in, written as Dovecot writes it: the scheme in
// braces before the hash ("{SHA512-CRYPT}$6$..."). VerifyPassword checks a
// password in whatever scheme its hash is; NeedsRehash tells the login
// path to replace a foreign hash by argon2id once a login has proved the
// password (see DB.Rehash). The schemes are Dovecot's ("doveadm pw -l"):
//
//	{ARGON2ID} {ARGON2I}         PHC strings, as libsodium writes them
//	{BLF-CRYPT}                  bcrypt, "$2a$", "$2b$", "$2y$"
//	{SHA512-CRYPT} {SHA256-CRYPT} crypt(3) "$6$", "$5$" (shacrypt.go)
//	{SSHA512} {SSHA256} {SSHA}   base64(digest(password salt) salt)
//	{SHA512} {SHA256} {SHA} {SHA1} base64(digest(password))
//	{CRAM-MD5}                   hex of the HMAC-MD5 inner and outer states
//	{PLAIN} {CLEAR} {CLEARTEXT}  the password itself
//
// A suffix ".B64", ".BASE64" or ".HEX" on a digest or plain scheme names
// the encoding of what follows, as in Dovecot. Every comparison is in
// constant time.

// ErrUnknownScheme is returned by CheckHash for a hash in a scheme we
// cannot verify.
var ErrUnknownScheme = errors.New("unknown password scheme")

// digestSchemes are the plain and salted digests: the scheme, its hash
// function, and whether a salt follows the digest.
var digestSchemes = map[string]struct {
	h      func() hash.Hash
	salted bool
}{
	"SHA":     {sha1.New, false},
	"SHA1":    {sha1.New, false},
	"SSHA":    {sha1.New, true},
	"SHA256":  {sha256.New, false},
	"SSHA256": {sha256.New, true},
	"SHA512":  {sha512.New, false},
	"SSHA512": {sha512.New, true},
}

// plainSchemes hold the password itself.
var plainSchemes = map[string]bool{"PLAIN": true, "CLEAR": true, "CLEARTEXT": true}

// splitScheme splits "{SCHEME.ENC}rest" into the upper-case scheme, its
// encoding suffix ("" when none) and rest. A hash without braces is
// recognized by its own prefix: "$argon2id$", "$argon2i$", "$2?$", "$5$",
// "$6$"; anything else has scheme "".
func splitScheme(h string) (scheme, enc, rest string) {
	if strings.HasPrefix(h, "{") {
		i := strings.IndexByte(h, '}')
		if i < 0 {
			return "", "", h
		}
		scheme, rest = strings.ToUpper(h[1:i]), h[i+1:]
		if s, e, ok := strings.Cut(scheme, "."); ok {
			scheme, enc = s, e
		}
		return scheme, enc, rest
	}
	switch {
	case strings.HasPrefix(h, "$argon2id$"):
		return "ARGON2ID", "", h
	case strings.HasPrefix(h, "$argon2i$"):
		return "ARGON2I", "", h
	case len(h) > 4 && h[0] == '$' && h[1] == '2' && h[3] == '$':
		return "BLF-CRYPT", "", h
	case strings.HasPrefix(h, "$5$"):
		return "SHA256-CRYPT", "", h
	case strings.HasPrefix(h, "$6$"):
		return "SHA512-CRYPT", "", h
	}
	return "", "", h
}

// decodeEnc decodes s in the encoding enc ("" is the scheme's default,
// given as def).
func decodeEnc(s, enc, def string) ([]byte, error) {
	if enc == "" {
		enc = def
	}
	switch enc {
	case "B64", "BASE64":
		return base64.StdEncoding.DecodeString(s)
	case "HEX":
		return hex.DecodeString(s)
	case "RAW":
		return []byte(s), nil
	}
	return nil, fmt.Errorf("unknown encoding %q", enc)
}

// VerifyPassword checks p against a stored hash in any supported scheme, in
// constant time. A hash it cannot parse never matches.
func VerifyPassword(stored, p string) bool {
	scheme, enc, rest := splitScheme(stored)
	switch scheme {
	case "ARGON2ID", "ARGON2I":
		if enc != "" {
			return false
		}
		return verifyArgon2(rest, p)
	case "BLF-CRYPT":
		if enc != "" || !strings.HasPrefix(rest, "$2") {
			return false
		}
		// crypt(3) reads at most 72 bytes of a bcrypt password, and so
		// did the server that made the hash; x/crypto refuses longer.
		pw := []byte(p)
		if len(pw) > 72 {
			pw = pw[:72]
		}
		return bcrypt.CompareHashAndPassword([]byte(rest), pw) == nil
	case "SHA256-CRYPT", "SHA512-CRYPT":
		if enc != "" || (scheme == "SHA256-CRYPT") != strings.HasPrefix(rest, "$5$") {
			return false
		}
		return verifySHACrypt(rest, p)
	case "CRAM-MD5":
		want, err := decodeEnc(rest, enc, "HEX")
		if err != nil || len(want) != 32 {
			return false
		}
		return subtle.ConstantTimeCompare(cramMD5Context(p), want) == 1
	}
	if d, ok := digestSchemes[scheme]; ok {
		raw, err := decodeEnc(rest, enc, "B64")
		size := d.h().Size()
		if err != nil || len(raw) < size || !d.salted && len(raw) != size {
			return false
		}
		h := d.h()
		h.Write([]byte(p))
		h.Write(raw[size:])
		return subtle.ConstantTimeCompare(h.Sum(nil), raw[:size]) == 1
	}
	if plainSchemes[scheme] {
		want, err := decodeEnc(rest, enc, "RAW")
		if err != nil {
			return false
		}
		return subtle.ConstantTimeCompare([]byte(p), want) == 1
	}
	return false
}

// verifyArgon2 checks p against an argon2id or argon2i PHC string.
func verifyArgon2(hash, p string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" && parts[1] != "argon2i" {
		return false
	}
	m, t, th, salt, want, ok := parseArgon2(parts)
	if !ok {
		return false
	}
	var got []byte
	if parts[1] == "argon2id" {
		got = argon2.IDKey([]byte(p), salt, t, m, th, uint32(len(want)))
	} else {
		got = argon2.Key([]byte(p), salt, t, m, th, uint32(len(want)))
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// parseArgon2 reads the parameters, salt and key of a split PHC string,
// within bounds a login can afford (at most 1 GiB, 16 passes).
func parseArgon2(parts []string) (m, t uint32, th uint8, salt, key []byte, ok bool) {
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return 0, 0, 0, nil, nil, false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || th == 0 {
		return 0, 0, 0, nil, nil, false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return 0, 0, 0, nil, nil, false
	}
	key, err = b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return 0, 0, 0, nil, nil, false
	}
	return m, t, th, salt, key, true
}

// cramMD5Context is what Dovecot stores for {CRAM-MD5}: the MD5 states
// of HMAC-MD5 keyed with the password after its first block, the outer
// (opad) state then the inner (ipad) state, each as four little-endian
// 32-bit words (Dovecot's hmac_md5_get_cram_context). A CRAM-MD5 server
// resumes HMAC from them without knowing the password.
func cramMD5Context(password string) []byte {
	key := []byte(password)
	if len(key) > 64 {
		s := md5.Sum(key)
		key = s[:]
	}
	var ipad, opad [64]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	out := make([]byte, 0, 32)
	for _, pad := range [][64]byte{opad, ipad} {
		h := md5.New()
		h.Write(pad[:])
		// The state after one block: crypto/md5's marshalled form is
		// "md5\x01" and the four state words, big-endian.
		st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil || len(st) < 20 || string(st[:4]) != "md5\x01" {
			panic("crypto/md5: unexpected marshalled state")
		}
		for i := range 4 {
			out = binary.LittleEndian.AppendUint32(out, binary.BigEndian.Uint32(st[4+4*i:]))
		}
	}
	return out
}

// CheckHash validates a password hash to be imported: a scheme we can
// verify, well formed. It returns the hash as it will be stored: with its
// scheme in braces, upper case (a bare crypt string gets its scheme; a
// bare argon2id string of ours stays bare). Plain-text schemes are
// refused here: the caller hashes those (PlainFromHash).
func CheckHash(h string) (string, error) {
	if strings.ContainsAny(h, "\x00\r\n") || len(h) > 1024 {
		return "", fmt.Errorf("%w password hash: bad characters or too long", ErrInvalid)
	}
	scheme, enc, rest := splitScheme(h)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w {%s} hash: %s", ErrInvalid, scheme, why)
	}
	norm := "{" + scheme + "}" + rest
	if enc != "" {
		norm = "{" + scheme + "." + enc + "}" + rest
	}
	switch scheme {
	case "":
		return "", fmt.Errorf("%w: no {SCHEME} prefix and not a crypt(3) or PHC string", ErrUnknownScheme)
	case "ARGON2ID", "ARGON2I":
		parts := strings.Split(rest, "$")
		if enc != "" || len(parts) != 6 || parts[1] != strings.ToLower(scheme) {
			return bad("not a PHC string")
		}
		if _, _, _, _, _, ok := parseArgon2(parts); !ok {
			return bad("bad parameters, salt or key (at most m=1048576, t=16)")
		}
		if !strings.HasPrefix(h, "{") && scheme == "ARGON2ID" {
			return rest, nil // our own format
		}
		return norm, nil
	case "BLF-CRYPT":
		if enc != "" {
			return bad("no encoding suffix allowed")
		}
		if _, err := bcrypt.Cost([]byte(rest)); err != nil {
			return bad(err.Error())
		}
		return norm, nil
	case "SHA256-CRYPT", "SHA512-CRYPT":
		if enc != "" || (scheme == "SHA256-CRYPT") != strings.HasPrefix(rest, "$5$") || !validSHACrypt(rest) {
			return bad("not a well-formed crypt string (rounds at most 1048576)")
		}
		return norm, nil
	case "CRAM-MD5":
		raw, err := decodeEnc(rest, enc, "HEX")
		if err != nil || len(raw) != 32 {
			return bad("want 64 hex digits")
		}
		return norm, nil
	}
	if d, ok := digestSchemes[scheme]; ok {
		raw, err := decodeEnc(rest, enc, "B64")
		size := d.h().Size()
		if err != nil || len(raw) < size || !d.salted && len(raw) != size {
			return bad("bad encoding or length")
		}
		if d.salted && len(raw) == size {
			return bad("no salt")
		}
		return norm, nil
	}
	if plainSchemes[scheme] {
		return "", fmt.Errorf("%w: {%s} is a plain-text password: hash it (PlainFromHash)", ErrInvalid, scheme)
	}
	return "", fmt.Errorf("%w {%s}", ErrUnknownScheme, scheme)
}

// PlainFromHash returns the password of a plain-text scheme hash
// ("{PLAIN}secret", "{PLAIN.B64}c2VjcmV0"); ok is false for any other.
func PlainFromHash(h string) (password string, ok bool, err error) {
	scheme, enc, rest := splitScheme(h)
	if !plainSchemes[scheme] {
		return "", false, nil
	}
	b, err := decodeEnc(rest, enc, "RAW")
	if err != nil {
		return "", true, fmt.Errorf("%w {%s}: %v", ErrInvalid, scheme, err)
	}
	return string(b), true, nil
}

// HashScheme returns the scheme of a stored hash: "ARGON2ID" for ours,
// the braced scheme of an imported one.
func HashScheme(h string) string {
	s, _, _ := splitScheme(h)
	return s
}

// NeedsRehash reports whether a stored hash is not our own argon2id
// format with our parameters: after a successful login with it, the
// password is hashed again (DB.Rehash).
func NeedsRehash(h string) bool {
	if strings.HasPrefix(h, "{") {
		return true
	}
	return !strings.HasPrefix(h, fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, argonMemory, argonTime, argonThreads))
}
