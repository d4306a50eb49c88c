package ua

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"mime"
	"net/http"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// Draft is a message to compose.
type Draft struct {
	From    *netmail.Address
	To, Cc  []*netmail.Address
	Subject string
	Body    string // text; any line ends
	Attach  []string
	Date    time.Time // zero: now
}

// ParseAddresses parses each argument as an RFC 5322 address list.
func ParseAddresses(args []string) ([]*netmail.Address, error) {
	var out []*netmail.Address
	for _, a := range args {
		l, err := netmail.ParseAddressList(a)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", a, err)
		}
		out = append(out, l...)
	}
	return out, nil
}

func toMailAddrs(in []*netmail.Address) []*mail.Address {
	out := make([]*mail.Address, len(in))
	for i, a := range in {
		out[i] = &mail.Address{Name: a.Name, Address: a.Address}
	}
	return out
}

// Compose builds the RFC 5322 message with CRLF line ends: UTF-8 headers
// RFC 2047-encoded, a Date and Message-ID, the text as text/plain;
// charset=utf-8 (quoted-printable unless it is short-lined ASCII), and
// attachments base64-encoded with detected content types.
func Compose(d Draft) ([]byte, error) {
	if d.From == nil {
		return nil, fmt.Errorf("compose: no From address")
	}
	if !utf8.ValidString(d.Body) {
		return nil, fmt.Errorf("compose: body is not valid UTF-8")
	}
	var h mail.Header
	if d.Date.IsZero() {
		d.Date = time.Now()
	}
	// go-message writes fields in the reverse order of adding them; add
	// them last-first so the message reads Date, From, To, Cc, Subject.
	h.Set("MIME-Version", "1.0")
	id, err := messageID(d.From.Address)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	h.SetMessageID(id)
	h.SetSubject(d.Subject)
	if len(d.Cc) > 0 {
		h.SetAddressList("Cc", toMailAddrs(d.Cc))
	}
	if len(d.To) > 0 {
		h.SetAddressList("To", toMailAddrs(d.To))
	}
	h.SetAddressList("From", []*mail.Address{{Name: d.From.Name, Address: d.From.Address}})
	h.SetDate(d.Date)

	text := strings.ReplaceAll(d.Body, "\r\n", "\n")
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	var th mail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	if needsQP(text) {
		th.Set("Content-Transfer-Encoding", "quoted-printable")
	} else {
		th.Set("Content-Transfer-Encoding", "7bit")
		text = strings.ReplaceAll(text, "\n", "\r\n")
	}

	var buf bytes.Buffer
	if len(d.Attach) == 0 {
		fields := th.Header.Fields()
		for fields.Next() {
			h.Add(fields.Key(), fields.Value())
		}
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if _, err := io.WriteString(w, text); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	if _, err := io.WriteString(tw, text); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	for _, path := range d.Attach {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("attach: %w", err)
		}
		var ah mail.AttachmentHeader
		ct := detectType(path, data)
		var params map[string]string
		if strings.HasPrefix(ct, "text/") && utf8.Valid(data) {
			params = map[string]string{"charset": "utf-8"}
		}
		ah.SetContentType(ct, params)
		ah.SetFilename(filepath.Base(path))
		ah.Set("Content-Transfer-Encoding", "base64")
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, fmt.Errorf("attach: %w", err)
		}
		if _, err := aw.Write(data); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return buf.Bytes(), nil
}

// needsQP reports whether text (LF line ends) is not plain 7-bit with lines
// of at most 78 characters.
func needsQP(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		if len(line) > 78 || strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
			return true
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c >= 0x80 || c == '\r' || c == 0 {
				return true
			}
		}
	}
	return false
}

func detectType(path string, data []byte) string {
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(path))); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil {
			return mt
		}
	}
	t := http.DetectContentType(data)
	if mt, _, err := mime.ParseMediaType(t); err == nil {
		return mt
	}
	return "application/octet-stream"
}

// messageID returns a new Message-ID under the sender's domain (RFC 5322
// §3.6.4: globally unique; the right side names the originating site).
func messageID(from string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	domain := "localhost"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	return fmt.Sprintf("%s.%d@%s", base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]), time.Now().Unix(), domain), nil
}
