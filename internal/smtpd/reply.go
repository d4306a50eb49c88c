package smtpd

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// Replies are appended to the connection's write buffer as bytes; the
// buffer goes out when the reader needs more input from the network
// (netReader), so the replies to a pipelined group leave together
// (RFC 2920).

// noCode is a reply without an enhanced status code (220 greeting, 334,
// 354).
var noCode = smtp.NoEnhancedCode

// reply writes one reply. text may have several lines (separated by
// "\n"); control characters in it are replaced, so what a client sent
// can never end a reply line early. ec {0,0,0} means X.0.0.
func (c *conn) reply(code int, ec smtp.EnhancedCode, text string) {
	if ec == smtp.EnhancedCodeNotSet {
		if cl := code / 100; cl == 2 || cl == 4 || cl == 5 {
			ec = smtp.EnhancedCode{cl, 0, 0}
		} else {
			ec = noCode
		}
	}
	for {
		line, rest, more := strings.Cut(text, "\n")
		var b [24]byte
		p := strconv.AppendInt(b[:0], int64(code), 10)
		if more {
			p = append(p, '-')
		} else {
			p = append(p, ' ')
			if ec != noCode {
				p = strconv.AppendInt(p, int64(ec[0]), 10)
				p = append(p, '.')
				p = strconv.AppendInt(p, int64(ec[1]), 10)
				p = append(p, '.')
				p = strconv.AppendInt(p, int64(ec[2]), 10)
				p = append(p, ' ')
			}
		}
		c.w.Write(p)
		writeText(c, line)
		c.w.WriteString("\r\n")
		if !more {
			return
		}
		text = rest
	}
}

func writeText(c *conn, s string) {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		c.w.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < ' ' || b == 0x7f {
			b = '?'
		}
		c.w.WriteByte(b)
	}
}

// replyErr writes the reply an error stands for: an *smtp.SMTPError as it
// is, anything else (a bug) as 451 4.3.0, logged. It reports whether the
// reply was a 421, after which the connection closes (RFC 5321 §3.8).
func (c *conn) replyErr(err error) (closing bool) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		c.log.Error("unexpected error", "err", err)
		se = reply(451, 4, 3, 0, "Requested action aborted: local error")
	}
	c.reply(se.Code, se.EnhancedCode, se.Message)
	return se.Code == 421
}
