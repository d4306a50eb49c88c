package msgauth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/message"
)

// MaxHeaderSize bounds the header section the checks read and that
// StripResults filters. An honest message's header is a few KiB; a larger
// one is not given to the DKIM verifier (dkim=permerror) and forged
// Authentication-Results fields beyond it are not removed.
const MaxHeaderSize = 1 << 20

// maxFromDomains bounds the distinct domains in From fields whose DMARC
// policy is looked up; a message with more is quarantined.
const maxFromDomains = 8

// readHeader reads msg's header section: through the blank line that ends
// it, or all of msg when it has no body. truncated reports that no end was
// found within MaxHeaderSize; hdr then ends at the last line end before the
// limit.
func readHeader(msg io.ReaderAt, size int64) (hdr []byte, truncated bool, err error) {
	n := min(size, MaxHeaderSize)
	buf := make([]byte, n)
	m, err := msg.ReadAt(buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
		return nil, false, fmt.Errorf("read message header: %w", err)
	}
	end, found := headerEnd(buf)
	if !found && size > MaxHeaderSize {
		return buf[:end], true, nil
	}
	return buf[:end], false, nil
}

// headerEnd returns the length of the header section at the start of b,
// through the blank line (CRLF or bare LF) that ends it, and true; or, when
// b has no blank line, the length up to its last line end and false, or
// all of b if it ends without one.
func headerEnd(b []byte) (int, bool) {
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return len(b), false
		}
		line := b[i : i+j+1]
		i += j + 1
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return i, true
		}
	}
	return i, false
}

// splitFields splits a header section (without or with its ending blank
// line) into raw fields, each with its continuation lines and line ends.
// A blank line ends the section; what follows is not returned. Text
// before the first field that starts with white space is a field of its
// own, as is a line without a colon.
func splitFields(hdr []byte) [][]byte {
	var fields [][]byte
	start := -1
	i := 0
	for i < len(hdr) {
		j := bytes.IndexByte(hdr[i:], '\n')
		next := len(hdr)
		if j >= 0 {
			next = i + j + 1
		}
		line := hdr[i:next]
		if len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n' {
			break
		}
		cont := line[0] == ' ' || line[0] == '\t'
		if !cont || start < 0 {
			if start >= 0 {
				fields = append(fields, hdr[start:i])
			}
			start = i
		}
		i = next
	}
	if start >= 0 {
		fields = append(fields, hdr[start:i])
	}
	return fields
}

// fieldName returns a raw field's name, lower-cased, with white space
// before the colon removed (RFC 5322 §4.5.3's obsolete syntax); "" when the
// field has no colon or an empty name.
func fieldName(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i <= 0 {
		return ""
	}
	name := bytes.TrimRight(f[:i], " \t")
	if len(name) == 0 || bytes.ContainsAny(name, " \t\r\n") {
		return ""
	}
	return strings.ToLower(string(name))
}

// fieldValue returns a raw field's value after the colon, unfolded (line
// ends removed).
func fieldValue(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return ""
	}
	v := f[i+1:]
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	v = bytes.ReplaceAll(v, []byte("\n"), nil)
	return string(v)
}

// fromInfo is what the From fields say for DMARC.
type fromInfo struct {
	fields  int          // number of From fields
	domains []dns.Domain // distinct, in order; at most maxFromDomains+1
	invalid int          // addresses whose domain is not a valid name
}

// fromDomains collects the domains of the addresses in the From fields,
// with the lenient address parser the IMAP envelope uses, so DMARC judges
// the domain a user is shown.
func fromDomains(fields [][]byte) fromInfo {
	var fi fromInfo
	seen := map[dns.Domain]bool{}
	for _, f := range fields {
		if fieldName(f) != "from" {
			continue
		}
		fi.fields++
		for _, a := range message.ParseAddressList(fieldValue(f)) {
			if a.IsGroupStart() || a.IsGroupEnd() {
				continue
			}
			d, err := dns.ParseDomain(strings.TrimSuffix(a.Host, "."))
			if err != nil || a.Host == message.MissingDomain {
				fi.invalid++
				continue
			}
			if !seen[d] && len(fi.domains) <= maxFromDomains {
				seen[d] = true
				fi.domains = append(fi.domains, d)
			}
		}
	}
	return fi
}

// countFields counts the fields named name (lower case).
func countFields(fields [][]byte, name string) int {
	n := 0
	for _, f := range fields {
		if fieldName(f) == name {
			n++
		}
	}
	return n
}

// StripResults writes msg's header section (size bytes of message, as
// received) to w, without the Authentication-Results fields whose
// authserv-id is authservID (RFC 8601 §5: ours, so forged), and returns
// the length of the header section it consumed, blank line included; the
// caller copies msg from there on. Only the first MaxHeaderSize bytes are
// filtered; beyond that the caller copies the rest unchanged.
func StripResults(w io.Writer, msg io.ReaderAt, size int64, authservID string) (int64, error) {
	hdr, truncated, err := readHeader(msg, size)
	if err != nil {
		return 0, err
	}
	fields := splitFields(hdr)
	var keep int // bytes of hdr written so far
	for i, f := range fields {
		// With a truncated header the last field may go on beyond hdr:
		// keep it whole.
		if truncated && i == len(fields)-1 {
			break
		}
		if !isOurResults(f, authservID) {
			continue
		}
		off := offsetIn(hdr, f)
		if _, err := w.Write(hdr[keep:off]); err != nil {
			return 0, err
		}
		keep = off + len(f)
	}
	if _, err := w.Write(hdr[keep:]); err != nil {
		return 0, err
	}
	return int64(len(hdr)), nil
}

// offsetIn returns the offset of sub, a subslice, in b.
func offsetIn(b, sub []byte) int {
	return cap(b) - cap(sub)
}

// isOurResults reports whether raw field f is an Authentication-Results
// field with authserv-id id (compared as domain names are, without case).
func isOurResults(f []byte, id string) bool {
	if fieldName(f) != "authentication-results" {
		return false
	}
	got, ok := parseAuthservID(fieldValue(f))
	return ok && strings.EqualFold(got, id)
}

// parseAuthservID returns the authserv-id at the start of an
// Authentication-Results value (RFC 8601 §2.2: [CFWS] authserv-id, a
// token or quoted-string).
func parseAuthservID(v string) (string, bool) {
	i := skipCFWS(v, 0)
	if i >= len(v) {
		return "", false
	}
	if v[i] == '"' {
		var b strings.Builder
		for i++; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String(), b.Len() > 0
			default:
				b.WriteByte(c)
			}
		}
		return "", false
	}
	j := i
	for j < len(v) && isTokenChar(v[j]) {
		j++
	}
	return v[i:j], j > i
}

// skipCFWS skips white space and comments (nested, with quoted pairs)
// from i.
func skipCFWS(v string, i int) int {
	for i < len(v) {
		switch v[i] {
		case ' ', '\t', '\r', '\n':
			i++
		case '(':
			depth := 0
			for ; i < len(v); i++ {
				c := v[i]
				if c == '\\' {
					i++
					continue
				}
				if c == '(' {
					depth++
				} else if c == ')' {
					depth--
					if depth == 0 {
						i++
						break
					}
				}
			}
		default:
			return i
		}
	}
	return i
}

// isTokenChar reports whether c may appear in a MIME token (RFC 2045 §5.1).
func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}
