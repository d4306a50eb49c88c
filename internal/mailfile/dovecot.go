package mailfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dovecot's Maildir extensions, read so that mail moved from Dovecot keeps
// its IMAP UIDs, keywords, subscriptions and POP3 UIDLs. The formats are
// those of Dovecot's source (lib-storage/index/maildir/maildir-uidlist.c,
// maildir-keywords.c, lib-storage/list/subscription-file.c) and its
// documentation (admin manual, "Maildir Mailbox Format").

// DovecotUIDList is a Maildir folder's dovecot-uidlist: its UIDVALIDITY,
// next UID and the UID of every message Dovecot has seen, by the base of
// the file name (the part before ":2,").
type DovecotUIDList struct {
	UIDValidity uint32
	NextUID     uint32
	// GUID is the mailbox's 128-bit GUID in hex ("" in version 1 files).
	GUID string
	// Records are in the file's order, which is ascending UID.
	Records []DovecotUIDRecord
	byBase  map[string]int
}

// DovecotUIDRecord is one message of a uidlist.
type DovecotUIDRecord struct {
	UID uint32
	// Base is the file name up to its ":2," info.
	Base string
	// Ext are the extension fields by key: 'P' the POP3 UIDL (when Dovecot
	// was told to keep one), 'O' the POP3 order, 'G' the message GUID,
	// 'S' and 'W' sizes.
	Ext map[byte]string
}

// ReadDovecotUIDList reads dir/dovecot-uidlist. A missing file gives an
// error wrapping fs.ErrNotExist.
//
// Version 3 (Dovecot 1.1 on) begins "3 V<uidvalidity> N<nextuid>
// G<guid>", header fields in any order; then a line per message:
// "<uid> [<key><value> ...] :<base>". Version 1 (Courier's) begins
// "1 <uidvalidity> <nextuid>", records "<uid> <base>".
func ReadDovecotUIDList(dir string) (*DovecotUIDList, error) {
	path := filepath.Join(dir, "dovecot-uidlist")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseDovecotUIDList(data, path)
}

// ParseDovecotUIDList parses the contents of a dovecot-uidlist; name is
// used in errors.
func ParseDovecotUIDList(data []byte, name string) (*DovecotUIDList, error) {
	l := &DovecotUIDList{byBase: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	bad := func(line int, why string) error {
		return fmt.Errorf("%s line %d: %s", name, line, why)
	}
	if !sc.Scan() {
		return nil, bad(1, "empty")
	}
	header := sc.Text()
	if len(header) < 2 || header[1] != ' ' {
		return nil, bad(1, "no version")
	}
	version := header[0]
	switch version {
	case '1':
		f := strings.Fields(header[2:])
		if len(f) < 2 {
			return nil, bad(1, "version 1 header without UIDVALIDITY and next UID")
		}
		v, err1 := strconv.ParseUint(f[0], 10, 32)
		n, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, bad(1, "bad version 1 header")
		}
		l.UIDValidity, l.NextUID = uint32(v), uint32(n)
	case '3':
		for _, f := range strings.Fields(header[2:]) {
			key, val := f[0], f[1:]
			switch key {
			case 'V', 'N':
				n, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					return nil, bad(1, fmt.Sprintf("header field %q", f))
				}
				if key == 'V' {
					l.UIDValidity = uint32(n)
				} else {
					l.NextUID = uint32(n)
				}
			case 'G':
				l.GUID = val
			}
		}
	default:
		return nil, bad(1, fmt.Sprintf("unsupported version %c", version))
	}
	if l.UIDValidity == 0 || l.NextUID == 0 {
		return nil, bad(1, "UIDVALIDITY or next UID missing or 0")
	}
	var prev uint32
	for n := 2; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		i := strings.IndexByte(line, ' ')
		if i <= 0 {
			return nil, bad(n, "no UID")
		}
		uid, err := strconv.ParseUint(line[:i], 10, 32)
		if err != nil || uid == 0 || uid == 1<<32-1 {
			return nil, bad(n, "bad UID")
		}
		if uint32(uid) <= prev {
			return nil, bad(n, "UIDs not ascending")
		}
		prev = uint32(uid)
		rest := strings.TrimLeft(line[i:], " ")
		rec := DovecotUIDRecord{UID: uint32(uid)}
		if version == '3' {
			// Extension fields up to ":", then the base name.
			for rest != "" && rest[0] != ':' {
				f, r, _ := strings.Cut(rest, " ")
				if rec.Ext == nil {
					rec.Ext = map[byte]string{}
				}
				rec.Ext[f[0]] = f[1:]
				rest = strings.TrimLeft(r, " ")
			}
			rest = strings.TrimPrefix(rest, ":")
		}
		if rest == "" || strings.ContainsRune(rest, '/') {
			return nil, bad(n, "bad file name")
		}
		// Version 1 (Courier) records may name the file with its info.
		if rec.Base = MaildirBase(rest); rec.Base == "" {
			return nil, bad(n, "bad file name")
		}
		l.byBase[rec.Base] = len(l.Records)
		l.Records = append(l.Records, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if prev >= l.NextUID {
		// Dovecot itself takes the highest UID + 1 then.
		l.NextUID = prev + 1
	}
	return l, nil
}

// Lookup returns the record of a message file name (with or without its
// info).
func (l *DovecotUIDList) Lookup(name string) (DovecotUIDRecord, bool) {
	i, ok := l.byBase[MaildirBase(name)]
	if !ok {
		return DovecotUIDRecord{}, false
	}
	return l.Records[i], true
}

// MaildirBase is a Maildir file name without its info: up to the first
// ":" (as Dovecot cuts it) or "!2," (the info separator of systems that
// do not allow ':').
func MaildirBase(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	if i := strings.Index(name, "!2,"); i >= 0 {
		name = name[:i]
	}
	return name
}

// ReadDovecotKeywords reads dir/dovecot-keywords: lines "<index> <name>";
// Maildir info letters a-z are indexes 0-25. A missing file is no
// keywords.
func ReadDovecotKeywords(dir string) (map[int]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, line := range strings.Split(string(data), "\n") {
		idx, name, ok := strings.Cut(strings.TrimRight(line, "\r"), " ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i > 25 || name == "" {
			continue
		}
		out[i] = name
	}
	return out, nil
}

// InfoKeywords returns the keyword indexes of a Maildir file name's info:
// Dovecot's lowercase letters, 'a' = 0 to 'z' = 25.
func InfoKeywords(name string) []int {
	i := strings.LastIndexAny(name, ":!")
	if i < 0 {
		return nil
	}
	letters, ok := strings.CutPrefix(name[i+1:], "2,")
	if !ok {
		return nil
	}
	var out []int
	for j := 0; j < len(letters); j++ {
		if c := letters[j]; c >= 'a' && c <= 'z' {
			out = append(out, int(c-'a'))
		}
	}
	return out
}

// ReadDovecotSubscriptions reads the "subscriptions" file of a Dovecot
// mail root and returns the subscribed names, with sep as the hierarchy
// separator, as stored (modified UTF-7 unless Dovecot was told to write
// UTF-8). Version 2 files begin "V\t2\n\n" and separate hierarchy levels
// by tabs, escaping \x01, \t, \r and \n as \x01 and '1', 't', 'r', 'n';
// version 1 files list names with the namespace's separator (for
// Maildir++, "."). A missing file is no subscriptions.
func ReadDovecotSubscriptions(root string, sep string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(root, "subscriptions"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := string(data)
	v2 := strings.HasPrefix(s, "V\t2\n\n")
	if v2 {
		s = s[len("V\t2\n\n"):]
	}
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		if !v2 {
			out = append(out, strings.ReplaceAll(line, ".", sep))
			continue
		}
		levels := strings.Split(line, "\t")
		for i, l := range levels {
			levels[i] = tabUnescape(l)
		}
		out = append(out, strings.Join(levels, sep))
	}
	return out, nil
}

// tabUnescape undoes Dovecot's str_append_tabescaped.
func tabUnescape(s string) string {
	if !strings.Contains(s, "\x01") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\x01' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '1':
			b.WriteByte('\x01')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// DovecotUIDL formats a message's POP3 UIDL with Dovecot's
// pop3_uidl_format variables: %u the UID, %v the UIDVALIDITY (both with
// an optional width and X for hex, as in the default "%08Xu%08Xv"; like
// Dovecot's var-expand, X gives lower-case digits), %f the file name base, %g the message GUID (the G
// extension field, else the base), %% a percent sign. Other variables
// (%m, the MD5 of the header) are not supported.
func DovecotUIDL(format string, uid, uidValidity uint32, rec DovecotUIDRecord) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(format) && format[j] >= '0' && format[j] <= '9' {
			j++
		}
		width := format[i+1 : j]
		hexa := false
		if j < len(format) && (format[j] == 'X' || format[j] == 'x') {
			hexa = true
			j++
		}
		if j >= len(format) {
			return "", fmt.Errorf("pop3 uidl format %q: ends in a variable", format)
		}
		pad := func(n uint32) string {
			verb := "d"
			if hexa {
				verb = "x" // Dovecot's m_str_hex prints "%llx"
			}
			return fmt.Sprintf("%"+width+verb, n)
		}
		switch format[j] {
		case '%':
			b.WriteByte('%')
		case 'u':
			b.WriteString(pad(uid))
		case 'v':
			b.WriteString(pad(uidValidity))
		case 'f':
			b.WriteString(rec.Base)
		case 'g':
			if g := rec.Ext['G']; g != "" {
				b.WriteString(g)
			} else {
				b.WriteString(rec.Base)
			}
		default:
			return "", fmt.Errorf("pop3 uidl format %q: variable %%%c not supported", format, format[j])
		}
		i = j
	}
	return b.String(), nil
}
