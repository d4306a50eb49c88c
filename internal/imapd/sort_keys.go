package imapd

// SORT (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO): sort keys from the
// index row and the stored envelope.

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/message/mimetext"
	"github.com/jodmai/jodmai/internal/message/thread"
	"github.com/jodmai/jodmai/internal/store"
)

// sortItem is one message with its sort keys.
type sortItem struct {
	m       store.Message
	seq     uint32
	sent    time.Time
	subject string // base subject, ASCII upper-cased (i;ascii-casemap)
	from    string // addr-mailbox of the first From address, upper-cased
	to, cc  string
	dfrom   string // RFC 5957 display forms, case-folded
	dto     string
}

// sortNeedsEnvelope reports whether a criterion reads the envelope.
func sortNeedsEnvelope(cs []imapwire.SortCriterion) bool {
	for _, c := range cs {
		if c.Key != imapwire.SortArrival && c.Key != imapwire.SortSize {
			return true
		}
	}
	return false
}

// sortUpperASCII is the i;ascii-casemap form of s (RFC 4790 §9.2): ASCII
// letters upper-cased, other bytes as they are.
func sortUpperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// sortFirstAddress is the first real address of a list (group markers
// skipped), or nil.
func sortFirstAddress(l []message.Address) *message.Address {
	for i := range l {
		if l[i].Host != "" {
			return &l[i]
		}
	}
	return nil
}

// sortMailbox is RFC 5256's key for FROM, TO and CC: the addr-mailbox of
// the first address, "" without one. The first address is the first of
// the ENVELOPE list, a group's start included, whose addr-mailbox is the
// group name (RFC 9051 §7.5.2), as Dovecot sorts (imaptest's
// sort-addresses: "Cc: user2: blah@domain1.org;" sorts as USER2).
func sortMailbox(l []message.Address) string {
	if len(l) > 0 {
		return sortUpperASCII(l[0].Mailbox)
	}
	return ""
}

// sortDisplay is RFC 5957's key for DISPLAYFROM and DISPLAYTO: the decoded
// display name of the first address, or its addr-spec when it has none.
func sortDisplay(l []message.Address) string {
	a := sortFirstAddress(l)
	if a == nil {
		return ""
	}
	name := strings.TrimSpace(mimetext.DecodeHeader(a.Name))
	if name == "" {
		name = a.Mailbox + "@" + a.Host
	}
	return string(searchFoldString(name))
}

// sortSentDate is the sent date of RFC 5256 §2.2: the Date header, or the
// internal date when it is missing or unparsable.
func sortSentDate(env *message.Envelope, internal time.Time) time.Time {
	if env != nil {
		if t, ok := searchParseDate(env.Date); ok {
			return t
		}
	}
	return internal
}

// sortMessages orders msgs (UID order) by the criteria; ties, as RFC 5256
// §3 requires, go by sequence number.
func (s *session) sortMessages(msgs []store.Message, criteria []imapwire.SortCriterion) ([]sortItem, error) {
	items := make([]sortItem, len(msgs))
	for i, m := range msgs {
		items[i] = sortItem{m: m, seq: s.sel.seqOf(m.UID)}
	}
	if sortNeedsEnvelope(criteria) {
		envs, err := s.fetchEnvelopes(msgs)
		if err != nil {
			return nil, err
		}
		for i := range items {
			it := &items[i]
			env := envs[it.m.ID]
			if env == nil {
				env = &message.Envelope{}
			}
			for _, c := range criteria {
				switch c.Key {
				case imapwire.SortDate:
					it.sent = sortSentDate(env, it.m.InternalDate)
				case imapwire.SortSubject:
					base, _ := thread.BaseSubject(env.Subject)
					it.subject = sortUpperASCII(base)
				case imapwire.SortFrom:
					it.from = sortMailbox(env.From)
				case imapwire.SortTo:
					it.to = sortMailbox(env.To)
				case imapwire.SortCc:
					it.cc = sortMailbox(env.Cc)
				case imapwire.SortDisplayFrom:
					it.dfrom = sortDisplay(env.From)
				case imapwire.SortDisplayTo:
					it.dto = sortDisplay(env.To)
				}
			}
		}
	}
	slices.SortStableFunc(items, func(a, b sortItem) int {
		for _, c := range criteria {
			var r int
			switch c.Key {
			case imapwire.SortArrival:
				r = a.m.InternalDate.Compare(b.m.InternalDate)
			case imapwire.SortDate:
				r = a.sent.Compare(b.sent)
			case imapwire.SortSize:
				r = cmp.Compare(a.m.Size, b.m.Size)
			case imapwire.SortSubject:
				r = strings.Compare(a.subject, b.subject)
			case imapwire.SortFrom:
				r = strings.Compare(a.from, b.from)
			case imapwire.SortTo:
				r = strings.Compare(a.to, b.to)
			case imapwire.SortCc:
				r = strings.Compare(a.cc, b.cc)
			case imapwire.SortDisplayFrom:
				r = strings.Compare(a.dfrom, b.dfrom)
			case imapwire.SortDisplayTo:
				r = strings.Compare(a.dto, b.dto)
			}
			if c.Reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return items, nil
}
