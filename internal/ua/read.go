package ua

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 text parts
	"github.com/emersion/go-message/mail"

	"github.com/jodmai/jodmai/internal/mailfile"
)

// Summary is one line of a Maildir listing.
type Summary struct {
	mailfile.MaildirEntry
	Date    time.Time
	From    string
	Subject string
}

// Summaries lists the Maildir's messages with their headers, oldest first.
func Summaries(m *mailfile.Maildir) ([]Summary, error) {
	ents, err := m.List()
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(ents))
	for _, e := range ents {
		s := Summary{MaildirEntry: e}
		if f, err := os.Open(e.Path); err == nil {
			if r, err := mail.CreateReader(f); err == nil || message.IsUnknownCharset(err) {
				s.Date, _ = r.Header.Date()
				if l, err := r.Header.AddressList("From"); err == nil && len(l) > 0 {
					s.From = l[0].String()
					if l[0].Name != "" {
						s.From = l[0].Name + " <" + l[0].Address + ">"
					}
				} else {
					s.From = r.Header.Get("From")
				}
				s.Subject, _ = r.Header.Subject()
				r.Close()
			}
			f.Close()
		}
		out = append(out, s)
	}
	return out, nil
}

// Read writes a readable form of the message at path to w: the main
// headers and every text part decoded; attachments by name.
func Read(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := mail.CreateReader(f)
	if err != nil && !message.IsUnknownCharset(err) {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	defer r.Close()
	for _, k := range []string{"Date", "From", "To", "Cc", "Subject"} {
		if !r.Header.Has(k) {
			continue
		}
		v, err := r.Header.Text(k)
		if err != nil {
			v = r.Header.Get(k)
		}
		fmt.Fprintf(w, "%s: %s\n", k, v)
	}
	fmt.Fprintln(w)
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			t, _, _ := h.ContentType()
			if t == "" || strings.HasPrefix(t, "text/plain") {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					return err
				}
				s := strings.ReplaceAll(string(b), "\r\n", "\n")
				io.WriteString(w, s)
				if !strings.HasSuffix(s, "\n") {
					fmt.Fprintln(w)
				}
			} else {
				fmt.Fprintf(w, "[%s part]\n", t)
			}
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			t, _, _ := h.ContentType()
			fmt.Fprintf(w, "[attachment: %s (%s)]\n", name, t)
		}
	}
	return nil
}

// Matches reports whether the message at path contains every word
// (case-insensitively) in its From, To, Cc or Subject header or a decoded
// text/plain part.
func Matches(path string, words []string) (bool, error) {
	var b strings.Builder
	if err := Read(&b, path); err != nil {
		return false, err
	}
	text := strings.ToLower(b.String())
	for _, w := range words {
		if !strings.Contains(text, strings.ToLower(w)) {
			return false, nil
		}
	}
	return true, nil
}
