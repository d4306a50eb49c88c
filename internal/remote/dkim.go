package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtp"

	"github.com/jodmai/jodmai/internal/safeio"
)

// DKIM keys live in DATA/dkim/<domain>/<selector>.<alg>.pem: the domain in
// lower-case A-label form, alg "ed25519" or "rsa", the key PKCS#8 in a
// "PRIVATE KEY" PEM block, files 0600 in 0700 directories, written
// atomically. The selector is the file name up to the first dot. Every key
// of a domain signs its outbound mail. Rotation is Keygen (new selectors
// sign beside the old ones) then RetireKey for each old selector, which
// moves its file to DATA/dkim/<domain>/retired/: it signs no more, and its
// selector is never given to a new key.

const (
	// maxSignHeader bounds the header Sign reads (and mox's signer then
	// parses): a message with a larger header is not signed.
	maxSignHeader = 1 << 20
	// keyRecheck is how often a domain's key directory is read again, so
	// that keys made while the server runs are used.
	keyRecheck = time.Minute
	// keyCacheMax bounds the number of domains whose keys are cached.
	keyCacheMax = 1000
	// rsaBits is the size of generated RSA keys (RFC 8301 §3.2: at least
	// 1024, 2048 recommended).
	rsaBits = 2048
)

// signedHeaders are the header fields signed (RFC 6376 §5.4.1's
// recommendation, plus the MIME fields and Message-ID). They are also
// "oversigned": a receiver's verification fails if another instance is
// added later.
var signedHeaders = []string{
	"From", "Sender", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post",
	"List-Subscribe", "List-Post", "List-Owner", "List-Archive",
}

// Key is one DKIM key of a domain and the DNS record that publishes it.
type Key struct {
	// Domain is the signing domain (d=), A-label form.
	Domain string
	// Selector is the s= value, e.g. "j202611e".
	Selector string
	// Alg is "ed25519" or "rsa".
	Alg string
	// Path is the private key file.
	Path string
	// Name is the DNS name of the TXT record:
	// "<selector>._domainkey.<domain>." (absolute).
	Name string
	// Record is the TXT record's value, e.g. "v=DKIM1; k=ed25519; p=...".
	// An RSA record is longer than 255 bytes: zone files split it into
	// several quoted strings (ZoneRecord).
	Record string

	signer crypto.Signer
}

// ZoneRecord returns the key's record as a zone-file line, the value split
// into quoted strings of at most 255 bytes (RFC 1035 §3.3.14).
func (k Key) ZoneRecord() string {
	var parts []string
	s := k.Record
	for len(s) > 255 {
		parts = append(parts, `"`+s[:255]+`"`)
		s = s[255:]
	}
	parts = append(parts, `"`+s+`"`)
	return fmt.Sprintf("%s 3600 IN TXT ( %s )", k.Name, strings.Join(parts, " "))
}

// keyDir returns DATA/dkim/<domain> for a domain in any form.
func keyDir(dataDir, domain string) (string, dns.Domain, error) {
	d, err := dns.ParseDomain(strings.TrimSuffix(domain, "."))
	if err != nil {
		return "", dns.Domain{}, fmt.Errorf("dkim: bad domain %q: %w", domain, err)
	}
	// mox's parser accepts empty labels ("a..b", ".."): the name becomes
	// a directory, so only plain host names pass.
	if !hostName(d.ASCII) {
		return "", dns.Domain{}, fmt.Errorf("dkim: bad domain %q", domain)
	}
	return filepath.Join(dataDir, "dkim", d.ASCII), d, nil
}

// hostName says s is a lower-case host name: dot-separated labels of 1 to
// 63 letters, digits and hyphens, no label starting or ending with a
// hyphen, at most 253 bytes (RFC 1123 §2.1).
func hostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Keygen makes a new ed25519 key and a new rsa-2048 key for domain, with
// selectors dated by year and month ("j202611e", "j202611r"; a number is
// added if a selector is taken), writes them under dataDir/dkim/<domain>,
// and returns them with the TXT records to publish.
func Keygen(dataDir, domain string) ([]Key, error) {
	dir, d, err := keyDir(dataDir, domain)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dkim: make key directory: %w", err)
	}
	existing, err := LoadKeys(dataDir, domain)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, k := range existing {
		taken[k.Selector] = true
	}
	// A retired selector may still be in DNS caches with its old key.
	retired, err := os.ReadDir(filepath.Join(dir, retiredDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dkim: read retired keys: %w", err)
	}
	for _, e := range retired {
		if sel, _, ok := strings.Cut(e.Name(), "."); ok {
			taken[sel] = true
		}
	}
	prefix := "j" + time.Now().UTC().Format("200601")
	var keys []Key
	for _, alg := range []string{"ed25519", "rsa"} {
		var signer crypto.Signer
		switch alg {
		case "ed25519":
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("dkim: generate ed25519 key: %w", err)
			}
			signer = priv
		case "rsa":
			priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
			if err != nil {
				return nil, fmt.Errorf("dkim: generate rsa key: %w", err)
			}
			signer = priv
		}
		sel := prefix + alg[:1]
		for n := 2; taken[sel]; n++ {
			if n > 99 {
				return nil, fmt.Errorf("dkim: no free selector for %s in %s", alg, prefix)
			}
			sel = fmt.Sprintf("%s%s%d", prefix, alg[:1], n)
		}
		taken[sel] = true
		der, err := x509.MarshalPKCS8PrivateKey(signer)
		if err != nil {
			return nil, fmt.Errorf("dkim: marshal %s key: %w", alg, err)
		}
		path := filepath.Join(dir, sel+"."+alg+".pem")
		if err := safeio.CreateFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
		k, err := makeKey(d, sel, alg, path, signer)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// retiredDir is where RetireKey moves a key, inside its domain's directory.
const retiredDir = "retired"

// ErrNoKey is returned by RetireKey for a selector the domain has no key
// for.
var ErrNoKey = errors.New("dkim: no such key")

// RetireKey stops the key of selector from signing domain's mail: its
// file moves, durably (both directories fsynced), to the domain's retired/
// directory, kept rather than deleted. Running Signers stop using it when
// they next read the directory (within keyRecheck). Its DNS record should
// stay published a few days more, for messages signed with it still on
// their way.
func RetireKey(dataDir, domain, selector string) error {
	keys, err := LoadKeys(dataDir, domain)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k Key) bool { return k.Selector == selector })
	if i < 0 {
		return fmt.Errorf("%w: %s for %s", ErrNoKey, selector, domain)
	}
	dir := filepath.Dir(keys[i].Path)
	to := filepath.Join(dir, retiredDir)
	if err := safeio.MkdirAll(to, 0o700); err != nil {
		return fmt.Errorf("dkim: make retired directory: %w", err)
	}
	if err := os.Rename(keys[i].Path, filepath.Join(to, filepath.Base(keys[i].Path))); err != nil {
		return fmt.Errorf("dkim: retire %s: %w", selector, err)
	}
	if err := safeio.SyncDir(to); err != nil {
		return err
	}
	return safeio.SyncDir(dir)
}

func makeKey(d dns.Domain, sel, alg, path string, signer crypto.Signer) (Key, error) {
	var rec string
	switch pub := signer.Public().(type) {
	case ed25519.PublicKey:
		if alg != "ed25519" {
			return Key{}, fmt.Errorf("dkim: %s: ed25519 key in a %s file", path, alg)
		}
		// RFC 8463 §4.2: the raw 32-byte public key.
		rec = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	case *rsa.PublicKey:
		if alg != "rsa" {
			return Key{}, fmt.Errorf("dkim: %s: rsa key in a %s file", path, alg)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return Key{}, fmt.Errorf("dkim: %s: marshal public key: %w", path, err)
		}
		rec = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	default:
		return Key{}, fmt.Errorf("dkim: %s: unsupported key type %T", path, pub)
	}
	return Key{Domain: d.ASCII, Selector: sel, Alg: alg, Path: path, Name: sel + "._domainkey." + d.ASCII + ".", Record: rec, signer: signer}, nil
}

// LoadKeys returns the keys of domain in dataDir, sorted by selector; none
// (and no error) when the domain has no key directory.
func LoadKeys(dataDir, domain string) ([]Key, error) {
	dir, d, err := keyDir(dataDir, domain)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("dkim: read key directory: %w", err)
	}
	var keys []Key
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".pem") {
			continue
		}
		sel, alg, ok := strings.Cut(strings.TrimSuffix(name, ".pem"), ".")
		if !ok || sel == "" || (alg != "ed25519" && alg != "rsa") {
			continue
		}
		path := filepath.Join(dir, name)
		buf, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("dkim: read key: %w", err)
		}
		b, _ := pem.Decode(buf)
		if b == nil || b.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("dkim: %s: no PKCS#8 PRIVATE KEY block", path)
		}
		priv, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim: %s: %w", path, err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("dkim: %s: key type %T cannot sign", path, priv)
		}
		k, err := makeKey(d, sel, alg, path, signer)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Selector < keys[j].Selector })
	return keys, nil
}

// Signer signs outbound messages with the keys of their From domain. It
// is safe for concurrent use.
type Signer struct {
	// Dir is the data directory: keys are read from Dir/dkim.
	Dir string
	// Log gets key loading problems; nil discards.
	Log *slog.Logger

	mu    sync.Mutex
	cache map[string]*domainKeys
	now   func() time.Time // tests move the clock
}

type domainKeys struct {
	selectors []dkim.Selector
	loaded    time.Time
}

// ErrNotSignable is returned by Sign for a message that cannot be signed
// because of what it is: no From field, or more than one, a From without
// an address with a domain, a malformed header section, a header over 1
// MiB. Trying again cannot help: the caller sends the message unsigned
// (RFC 6376 §2: a message without a signature is treated as unsigned,
// never refused for that alone). Other errors of Sign are local failures
// (I/O), worth a retry.
var ErrNotSignable = errors.New("dkim: message cannot be signed")

// ErrHeaderTooLarge is returned by Sign for a header over 1 MiB; it is an
// ErrNotSignable.
var ErrHeaderTooLarge = fmt.Errorf("%w: message header too large to sign", ErrNotSignable)

// Sign reads the message (CRLF line ends) from r and returns the
// DKIM-Signature header fields to prepend to it, each ending in CRLF, one
// per key of the From address's domain (relaxed/relaxed, sha256): nil when
// that domain has no key. If r is an io.ReaderAt the message is read at
// offsets from 0 (an *io.SectionReader over a stored body is ideal);
// otherwise it is spooled to a temporary file. A message that cannot be
// signed (no From address, a malformed header) is an ErrNotSignable.
func (s *Signer) Sign(r io.Reader) ([]byte, error) {
	ra, isAt := r.(io.ReaderAt)
	var br *bufio.Reader
	var hdr []byte
	var err error
	if isAt {
		hdr, err = readHeader(bufio.NewReader(io.NewSectionReader(ra, 0, maxSignHeader+2)))
	} else {
		br = bufio.NewReader(r)
		hdr, err = readHeader(br)
	}
	if err != nil {
		return nil, err
	}
	local, domain, err := fromAddress(hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSignable, err)
	}
	sels := s.selectors(domain)
	if len(sels) == 0 {
		return nil, nil
	}
	if !isAt {
		f, err := spool(io.MultiReader(bytes.NewReader(hdr), br))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ra = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := dkim.Sign(ctx, s.log(), smtp.Localpart(local), domain, sels, false, ra)
	if errors.Is(err, dkim.ErrHeaderMalformed) || errors.Is(err, dkim.ErrFrom) {
		// Several From fields, a line that is not a header field, a
		// header section without the empty line that ends it.
		return nil, fmt.Errorf("%w: %w", ErrNotSignable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: sign for %s: %w", domain.ASCII, err)
	}
	return []byte(h), nil
}

// spool copies r into an unlinked temporary file.
func spool(r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp("", "jodmai-dkim-*")
	if err != nil {
		return nil, fmt.Errorf("dkim: spool message: %w", err)
	}
	os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("dkim: spool message: %w", err)
	}
	return f, nil
}

func (s *Signer) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// readHeader returns the header section, up to and including the empty
// line (or all of a message without body), at most maxSignHeader bytes.
func readHeader(br *bufio.Reader) ([]byte, error) {
	var hdr []byte
	partial := false // the previous read ended inside a long line
	for {
		line, err := br.ReadSlice('\n')
		if len(hdr)+len(line) > maxSignHeader {
			return nil, ErrHeaderTooLarge
		}
		hdr = append(hdr, line...)
		if err == bufio.ErrBufferFull {
			partial = true
			continue
		}
		if err == io.EOF {
			return hdr, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dkim: read header: %w", err)
		}
		if !partial && (string(line) == "\r\n" || string(line) == "\n") {
			return hdr, nil
		}
		partial = false
	}
}

// fromAddress returns the localpart and domain of the (first) From address
// in the header section hdr.
func fromAddress(hdr []byte) (string, dns.Domain, error) {
	var from []byte
	found := false
	for _, line := range bytes.SplitAfter(hdr, []byte("\n")) {
		if found {
			if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
				from = append(from, line...)
				continue
			}
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(strings.TrimSpace(string(k)), "From") {
			found = true
			from = append(from, v...)
		}
	}
	if !found {
		return "", dns.Domain{}, errors.New("dkim: message has no From header")
	}
	v := strings.NewReplacer("\r\n", "", "\n", "").Replace(string(from))
	addrs, err := mail.ParseAddressList(strings.TrimSpace(v))
	if err != nil || len(addrs) == 0 {
		return "", dns.Domain{}, fmt.Errorf("dkim: bad From header %q: %v", strings.TrimSpace(v), err)
	}
	at := strings.LastIndexByte(addrs[0].Address, '@')
	if at < 0 {
		return "", dns.Domain{}, fmt.Errorf("dkim: From address %q has no domain", addrs[0].Address)
	}
	d, err := dns.ParseDomain(addrs[0].Address[at+1:])
	if err != nil {
		return "", dns.Domain{}, fmt.Errorf("dkim: From domain: %w", err)
	}
	return addrs[0].Address[:at], d, nil
}

// selectors returns the signing selectors of domain, from the cache when
// it was read less than keyRecheck ago.
func (s *Signer) selectors(d dns.Domain) []dkim.Selector {
	now := time.Now()
	if s.now != nil {
		now = s.now()
	}
	if !hostName(d.ASCII) {
		return nil // no key can exist for it
	}
	s.mu.Lock()
	dk := s.cache[d.ASCII]
	s.mu.Unlock()
	if dk != nil && now.Sub(dk.loaded) < keyRecheck {
		return dk.selectors
	}
	keys, err := LoadKeys(s.Dir, d.ASCII)
	if err != nil {
		s.log().Error("dkim: loading keys", slog.String("domain", d.ASCII), slog.Any("err", err))
		if dk != nil {
			return dk.selectors // keep signing with the keys we had
		}
	}
	var sels []dkim.Selector
	for _, k := range keys {
		sel, err := dns.ParseDomain(k.Selector)
		if err != nil {
			s.log().Error("dkim: bad selector", slog.String("domain", d.ASCII), slog.String("selector", k.Selector), slog.Any("err", err))
			continue
		}
		sels = append(sels, dkim.Selector{
			Hash:          "sha256",
			HeaderRelaxed: true,
			BodyRelaxed:   true,
			Headers:       signedHeaders,
			SealHeaders:   true,
			PrivateKey:    k.signer,
			Domain:        sel,
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil || len(s.cache) >= keyCacheMax {
		s.cache = map[string]*domainKeys{}
	}
	s.cache[d.ASCII] = &domainKeys{selectors: sels, loaded: now}
	return sels
}
