package dnstest

import (
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzAnswer feeds arbitrary packets to the query handler: no panic, and
// any answer is a well-formed response with the query's ID.
func FuzzAnswer(f *testing.F) {
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true}, Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("b.test."), Type: dnsmessage.TypeMX, Class: dnsmessage.ClassINET}}}
	packed, err := q.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(packed, true)
	f.Add([]byte{0, 1, 2}, false)
	s := Start(f)
	s.SetMX("b.test", MX{10, "mx.b.test"})
	s.SetCNAME("alias.test", "b.test")
	s.SetTXT("b.test", string(make([]byte, 1000)))
	f.Fuzz(func(t *testing.T, msg []byte, udp bool) {
		out := s.answer(msg, udp)
		if out == nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(out)
		if err != nil || !h.Response {
			t.Fatalf("bad answer %x: %v", out, err)
		}
		if udp && len(out) > 65535 {
			t.Fatalf("answer of %d bytes", len(out))
		}
		if len(msg) >= 2 && h.ID != uint16(msg[0])<<8|uint16(msg[1]) {
			t.Fatalf("answer ID %d", h.ID)
		}
	})
}
