package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// refData is the DATA body of in as a byte-at-a-time reader sees it: the
// unstuffed message, whether the end marker came, and what follows it.
func refData(in []byte) (msg []byte, ended bool, rest []byte) {
	bol := true
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return msg, false, nil
		}
		line := in[:i+1]
		in = in[i+1:]
		if bol && string(line) == ".\r\n" {
			return msg, true, in
		}
		out := line
		if bol && line[0] == '.' {
			out = line[1:]
		}
		msg = append(msg, out...)
		bol = len(line) >= 2 && line[len(line)-2] == '\r'
	}
	return msg, false, nil
}

func readAllSmall(r io.Reader, chunk int) ([]byte, error) {
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, errors.New("Read returned 0, nil")
		}
	}
}

// FuzzDataReader checks the DATA reader against refData, with read
// buffers and caller buffers of many sizes (so lines are split by the
// buffer), and its limits.
func FuzzDataReader(f *testing.F) {
	for _, s := range []string{
		"Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\n",
		"..dot\r\n.x\r\n. \r\n.\r\n",
		"bare\n.\nstill\r\n.\r\n",
		"no end\r\n",
		"lone\rCR\r\n\r\r\n.\r\n",
		strings.Repeat("x", 100) + "\r\n.\r\n",
		".\r\r\n.\r\n",
	} {
		f.Add([]byte(s), uint8(0), uint8(7), uint16(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, bufExtra, chunk uint8, limit uint16) {
		want, ended, rest := refData(in)
		r := bufio.NewReaderSize(bytes.NewReader(in), 16+int(bufExtra))
		var d dataReader
		d.reset(r, 1<<40, 1<<30, 1<<40)
		got, err := readAllSmall(&d, 1+int(chunk))
		// Without the end marker, part of an unterminated last line may
		// come too (the message is refused anyway).
		if ended && !bytes.Equal(got, want) || !ended && !bytes.HasPrefix(got, want) {
			t.Fatalf("body %q, want %q", got, want)
		}
		if ended != (err == io.EOF) || !ended && err != io.ErrUnexpectedEOF {
			t.Fatalf("err %v, ended %v", err, ended)
		}
		if ended {
			left, _ := io.ReadAll(r)
			if !bytes.Equal(left, rest) {
				t.Fatalf("left %q after the end, want %q", left, rest)
			}
		}

		// The size limit: refused exactly when over it, and the rest
		// is read to the end marker.
		r = bufio.NewReaderSize(bytes.NewReader(in), 16+int(bufExtra))
		d.reset(r, int64(limit), 1<<30, 1<<40)
		got, err = readAllSmall(&d, 1+int(chunk))
		switch {
		case len(want) > int(limit):
			if err != errTooBig && !(!ended && err == io.ErrUnexpectedEOF) {
				t.Fatalf("over the limit %d (%d bytes): err %v", limit, len(want), err)
			}
		case err != io.EOF && ended:
			t.Fatalf("within the limit %d (%d bytes): err %v", limit, len(want), err)
		}
		if ended && !bytes.HasPrefix(want, got) {
			t.Fatalf("limited read %q is not a prefix of %q", got, want)
		}
		derr := d.drain()
		if ended != (derr == nil) {
			t.Fatalf("drain: %v, ended %v", derr, ended)
		}
		if ended {
			left, _ := io.ReadAll(r)
			if !bytes.Equal(left, rest) {
				t.Fatalf("left %q after drain, want %q", left, rest)
			}
		}

		// The line limit: refused when a line (up to the end marker) is
		// longer.
		const maxLine = 20
		long := false
		for _, line := range bytes.SplitAfter(in[:len(in)-len(rest)], []byte("\n")) {
			if len(line) > maxLine {
				long = true
			}
		}
		r = bufio.NewReaderSize(bytes.NewReader(in), 16+int(bufExtra))
		d.reset(r, 1<<40, maxLine, 1<<40)
		_, err = readAllSmall(&d, 1+int(chunk))
		if ended && long != (err == errLongLine) {
			t.Fatalf("line limit: err %v, a long line: %v", err, long)
		}
	})
}

// FuzzCommandLine runs the command parsers on any line: no panics, and
// what they accept is well-formed.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By AUTH=<>",
		"RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@c",
		"RCPT TO:<\"q \\\" x\"@b> ORCPT=utf-8;\\x{E9}t\\x{E9}@x",
		"mail from:<@route,@x:u@d>",
		"MAIL FROM:<>",
		"EHLO x", "BDAT 100 LAST", "STARTTLS", "AUTH PLAIN =",
	} {
		f.Add([]byte(s))
	}
	cfg := paramConfig{maxSize: 1 << 20, dsn: true, requireTLS: true}
	f.Fuzz(func(t *testing.T, line []byte) {
		v, arg := parseCommand(line)
		if v != vUnknown && len(arg) > 0 && (isSpace(arg[0]) || isSpace(arg[len(arg)-1])) {
			t.Fatalf("argument %q not trimmed", arg)
		}
		for _, reverse := range []bool{false, true} {
			addr, rest, ok := parsePath(line, reverse)
			if !ok {
				continue
			}
			if len(rest) > len(line) {
				t.Fatalf("rest longer than the input")
			}
			if addr == "" && !reverse {
				t.Fatalf("empty forward path from %q", line)
			}
			if addr != "" && !strings.Contains(addr, "@") {
				t.Fatalf("address without @: %q", addr)
			}
			if opts, err := parseMailParams(rest, cfg); err == nil {
				if opts.Size > cfg.maxSize || opts.Size < 0 {
					t.Fatalf("SIZE %d accepted", opts.Size)
				}
				if !printableASCII([]byte(opts.EnvelopeID)) {
					t.Fatalf("ENVID %q", opts.EnvelopeID)
				}
			} else if err.Code < 500 {
				t.Fatalf("MAIL parameters refused with %d", err.Code)
			}
			if opts, err := parseRcptParams(rest, cfg); err == nil {
				if opts.OriginalRecipientType == smtp.DSNAddressTypeUTF8 && !utf8.ValidString(opts.OriginalRecipient) {
					t.Fatalf("ORCPT %q not UTF-8", opts.OriginalRecipient)
				}
				if opts.OriginalRecipientType == smtp.DSNAddressTypeRFC822 && !printableASCII([]byte(opts.OriginalRecipient)) {
					t.Fatalf("ORCPT %q not printable", opts.OriginalRecipient)
				}
				never := false
				for _, n := range opts.Notify {
					never = never || n == smtp.DSNNotifyNever
				}
				if never && len(opts.Notify) != 1 {
					t.Fatalf("NOTIFY %v", opts.Notify)
				}
			}
		}
		if n, ok := parseSize(line); ok && n < 0 {
			t.Fatalf("size %d", n)
		}
	})
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line string
		v    verb
		arg  string
	}{
		{"MAIL FROM:<a@b>", vMAIL, "FROM:<a@b>"},
		{"mail  FROM:<a@b>  ", vMAIL, "FROM:<a@b>"},
		{"StartTLS", vSTARTTLS, ""},
		{"EXPN x", vNotImpl, "x"},
		{"", vUnknown, ""},
		{"MAI", vUnknown, ""},
		{"MAILX FROM", vUnknown, "FROM"},
		{"\x00\x01\x02", vUnknown, ""},
	} {
		v, arg := parseCommand([]byte(tc.line))
		if v != tc.v || string(arg) != tc.arg {
			t.Errorf("%q: got %d %q, want %d %q", tc.line, v, arg, tc.v, tc.arg)
		}
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in      string
		reverse bool
		addr    string
		rest    string
		ok      bool
	}{
		{"<a@b.example>", false, "a@b.example", "", true},
		{"<a@b.example> SIZE=1", false, "a@b.example", " SIZE=1", true},
		{"a@b.example", false, "a@b.example", "", true},
		{"<>", true, "", "", true},
		{"<>", false, "", "", false},
		{"<@r1,@r2:a@b>", false, "a@b", "", true},
		{`<"john smith"@b>`, false, "john smith@b", "", true},
		{`<"a\"b"@b>`, false, `a"b@b`, "", true},
		{"<a b@c>", false, "", "", false},
		{"<a@>", false, "", "", false},
		{"<@b>", false, "", "", false},
		{"<a@b", false, "", "", false},
		{"x", false, "", "", false},
		{"<a\rb@c>", false, "a\rb@c", "", true}, // left to validPath
	} {
		addr, rest, ok := parsePath([]byte(tc.in), tc.reverse)
		if ok != tc.ok || ok && (addr != tc.addr || string(rest) != tc.rest) {
			t.Errorf("%q: got %q %q %v, want %q %q %v", tc.in, addr, rest, ok, tc.addr, tc.rest, tc.ok)
		}
	}
}

func TestParseParams(t *testing.T) {
	cfg := paramConfig{maxSize: 1000, dsn: true, requireTLS: true}
	for _, tc := range []struct {
		mail bool
		in   string
		code int // 0: accepted
	}{
		{true, "", 0},
		{true, " SIZE=1000 BODY=8bitmime SMTPUTF8 REQUIRETLS RET=full ENVID=a+2Bb AUTH=<>", 0},
		{true, " SIZE=1001", 552},
		{true, " SIZE=-5", 501},
		{true, " SIZE", 501},
		{true, " SIZE=1 SIZE=2 SMTPUTF8 SMTPUTF8", 0},
		{true, " SIZE=99999999999999999999", 552},  // 20 digits: valid, too big
		{true, " SIZE=999999999999999999999", 501}, // RFC 1870: at most 20
		{true, " SIZE=+5", 501},
		{true, " BODY=BINARYMIME", 555},
		{true, " BODY=9BIT", 555},
		{true, " BOGUS=1", 555},
		{true, " RET=BOGUS", 501},
		{true, " ENVID=bad+zz", 501},
		{true, " ENVID=a+2b", 501}, // hexchar is upper case
		{true, " SMTPUTF8=yes", 501},
		{true, " AUTH=a+40b@c", 0},
		{true, "SIZE=1", 501}, // no space after the path
		{true, " =1", 501},
		{true, " SIZE==1", 501},
		{false, " NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;a@b", 0},
		{false, " NOTIFY=NEVER", 0},
		{false, " NOTIFY=NEVER,SUCCESS", 501},
		{false, " NOTIFY=SUCCESS,SUCCESS", 501},
		{false, " NOTIFY=", 501},
		{false, " NOTIFY=SUCCESS,", 501},
		{false, " NOTIFY=SOMETIMES", 501},
		{false, " ORCPT=nosemicolon", 501},
		{false, " ORCPT=x400;a@b", 501},
		{false, " ORCPT=utf-8;\\x{E9}@b", 0},
		{false, " ORCPT=utf-8;\\x{41}@b", 501}, // A needs no escape
		{false, " FOO", 555},
	} {
		var err *smtp.SMTPError
		if tc.mail {
			_, err = parseMailParams([]byte(tc.in), cfg)
		} else {
			_, err = parseRcptParams([]byte(tc.in), cfg)
		}
		code := 0
		if err != nil {
			code = err.Code
		}
		if code != tc.code {
			t.Errorf("%q: %d %v, want %d", tc.in, code, err, tc.code)
		}
	}
	// Without DSN and REQUIRETLS offered.
	for _, in := range []string{" RET=FULL", " ENVID=x", " REQUIRETLS"} {
		if _, err := parseMailParams([]byte(in), paramConfig{maxSize: 1000}); err == nil || err.Code != 555 {
			t.Errorf("%q without the extension: %v", in, err)
		}
	}
	opts, _ := parseRcptParams([]byte(" ORCPT=rfc822;Bob+2Bx@remote.test NOTIFY=delay"), cfg)
	if opts.OriginalRecipient != "Bob+x@remote.test" || opts.OriginalRecipientType != smtp.DSNAddressTypeRFC822 || len(opts.Notify) != 1 || opts.Notify[0] != smtp.DSNNotifyDelayed {
		t.Errorf("RCPT options %+v", opts)
	}
}
