package pop3d

import (
	"strconv"
	"strings"
)

// message returns the index into the snapshot of the message number in
// arg, or the reply refusing it. RFC 1939 §5: a message marked as deleted
// may not be referred to.
func (s *session) message(arg string) (int, reply, bool) {
	n, ok := parseNumber(arg)
	if !ok {
		return 0, badReply("invalid message number"), false
	}
	if n < 1 || n > uint64(len(s.msgs)) {
		return 0, errReply("", "no such message"), false
	}
	i := int(n - 1)
	if s.deleted[i] {
		return 0, errReply("", "message "+strconv.Itoa(i+1)+" already deleted"), false
	}
	return i, reply{}, true
}

// parseNumber parses a non-negative decimal number of at most 10 digits
// (RFC 1939 numbers are unsigned; a sign or other characters are errors).
func parseNumber(s string) (uint64, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// stat returns the count and size of the messages not marked deleted.
func (s *session) stat() (int, int64) {
	return len(s.msgs) - s.nDeleted, s.total - s.delSize
}

// cmdStat: RFC 1939 §5 STAT.
func (s *session) cmdStat(args string) reply {
	if !noArgs(args) {
		return badReply("STAT takes no arguments")
	}
	n, size := s.stat()
	return okReply("%d %d", n, size)
}

// cmdList: RFC 1939 §5 LIST [msg]. Sizes are as stored: CRLF line ends,
// before dot-stuffing.
func (s *session) cmdList(args string) reply {
	f := strings.Fields(args)
	switch len(f) {
	case 0:
		n, size := s.stat()
		w := s.bw
		w.WriteString("+OK " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)\r\n")
		var b []byte
		for i, m := range s.msgs {
			if s.deleted[i] {
				continue
			}
			b = strconv.AppendInt(b[:0], int64(i+1), 10)
			b = append(b, ' ')
			b = strconv.AppendInt(b, m.Size, 10)
			b = append(b, '\r', '\n')
			w.Write(b)
		}
		w.WriteString(".\r\n")
		return multiline
	case 1:
		i, r, ok := s.message(f[0])
		if !ok {
			return r
		}
		return okReply("%d %d", i+1, s.msgs[i].Size)
	}
	return badReply("usage: LIST [message]")
}

// uidl is message i's unique id: the one it had on the server it was
// imported from, if kept (so a client that leaves mail on the server does
// not download it again after the move), else the store's.
func (s *session) uidl(i int) string {
	m := s.msgs[i]
	if u, ok := s.uidls[m.ID]; ok {
		return u
	}
	return m.UIDL(s.mailbox.UIDValidity)
}

// cmdUIDL: RFC 1939 §7 UIDL [msg]. The unique id is the store's (or one
// kept from an import): stable across sessions, never reused in this
// maildrop.
func (s *session) cmdUIDL(args string) reply {
	f := strings.Fields(args)
	switch len(f) {
	case 0:
		w := s.bw
		w.WriteString("+OK unique-id listing follows\r\n")
		var b []byte
		for i := range s.msgs {
			if s.deleted[i] {
				continue
			}
			b = strconv.AppendInt(b[:0], int64(i+1), 10)
			b = append(b, ' ')
			b = append(b, s.uidl(i)...)
			b = append(b, '\r', '\n')
			w.Write(b)
		}
		w.WriteString(".\r\n")
		return multiline
	case 1:
		i, r, ok := s.message(f[0])
		if !ok {
			return r
		}
		return okReply("%d %s", i+1, s.uidl(i))
	}
	return badReply("usage: UIDL [message]")
}

// cmdDele: RFC 1939 §5 DELE msg. It only marks; UPDATE removes.
func (s *session) cmdDele(args string) reply {
	f := strings.Fields(args)
	if len(f) != 1 {
		return badReply("usage: DELE message")
	}
	i, r, ok := s.message(f[0])
	if !ok {
		return r
	}
	s.deleted[i] = true
	s.nDeleted++
	s.delSize += s.msgs[i].Size
	return okReply("message %d deleted", i+1)
}

// cmdNoop: RFC 1939 §5 NOOP.
func (s *session) cmdNoop(args string) reply {
	if !noArgs(args) {
		return badReply("NOOP takes no arguments")
	}
	return okReply("")
}

// cmdRset: RFC 1939 §5 RSET unmarks every message marked as deleted.
func (s *session) cmdRset(args string) reply {
	if !noArgs(args) {
		return badReply("RSET takes no arguments")
	}
	clear(s.deleted)
	s.nDeleted, s.delSize = 0, 0
	n, size := s.stat()
	return okReply("maildrop has %d messages (%d octets)", n, size)
}
