// Package dnstest is a tiny authoritative DNS server for tests: UDP and TCP
// on the same 127.0.0.1 ephemeral port, records set at run time.
//
// Answers follow what real servers do and resolvers rely on: NXDOMAIN for a
// name the server knows nothing of, NOERROR with an empty answer for a known
// name without records of the asked type, CNAMEs followed within the zone,
// and UDP answers larger than the asker's buffer (EDNS0, else 512 bytes)
// truncated (TC) so that the resolver retries over TCP. The server stops
// with the test (t.Cleanup).
package dnstest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// TypeTLSA is the TLSA resource record type (RFC 6698).
const TypeTLSA dnsmessage.Type = 52

// ioTimeout bounds every read and write on a TCP connection.
const ioTimeout = 5 * time.Second

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	udp net.PacketConn
	tcp net.Listener
	t   testing.TB

	mu        sync.Mutex
	records   map[string][]dnsmessage.Resource // by lower-case absolute name
	authentic bool
	udpLimit  int
	queries   int
	tcpAsked  int

	wg     sync.WaitGroup
	closed chan struct{}
	conns  map[net.Conn]struct{}
}

// Start starts a server on 127.0.0.1 (UDP and TCP, one port). It stops when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	var s *Server
	// The TCP port the kernel picks may be taken for UDP: retry a few times.
	for i := 0; i < 20 && s == nil; i++ {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: listen tcp: %v", err)
		}
		udp, err := net.ListenPacket("udp", tcp.Addr().String())
		if err != nil {
			tcp.Close()
			continue
		}
		s = &Server{udp: udp, tcp: tcp, t: t, records: map[string][]dnsmessage.Resource{}, closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	}
	if s == nil {
		t.Fatalf("dnstest: no port free for both udp and tcp")
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	t.Cleanup(s.Close)
	return s
}

// Addr returns the server's "127.0.0.1:port", for resolver.New.
func (s *Server) Addr() string { return s.tcp.Addr().String() }

// Close stops the server and waits for its goroutines. Calling it twice is
// harmless.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return
	default:
	}
	close(s.closed)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

// Queries returns how many questions the server has answered.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// TCPQueries returns how many of those questions came over TCP.
func (s *Server) TCPQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAsked
}

// SetAuthentic makes the server set the AD bit (DNSSEC-authenticated data)
// on its answers, as a validating resolver would. Resolvers only trust the
// bit from servers they are configured to trust.
func (s *Server) SetAuthentic(ad bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authentic = ad
}

// SetUDPLimit caps UDP answers to n bytes whatever the asker announces (0:
// the asker's EDNS0 size, or 512), to force truncation in tests.
func (s *Server) SetUDPLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udpLimit = n
}

func canon(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (s *Server) mustName(name string) dnsmessage.Name {
	n, err := dnsmessage.NewName(canon(name))
	if err != nil {
		s.t.Fatalf("dnstest: bad name %q: %v", name, err)
	}
	return n
}

// set replaces name's records of type typ (all of them with bodies empty:
// the name is then known, without records of that type).
func (s *Server) set(name string, typ dnsmessage.Type, bodies ...dnsmessage.ResourceBody) {
	n := s.mustName(name)
	key := canon(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []dnsmessage.Resource
	for _, r := range s.records[key] {
		if r.Header.Type != typ {
			keep = append(keep, r)
		}
	}
	for _, b := range bodies {
		keep = append(keep, dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: n, Type: typ, Class: dnsmessage.ClassINET, TTL: 60}, Body: b})
	}
	if keep == nil {
		keep = []dnsmessage.Resource{}
	}
	s.records[key] = keep
}

// Known makes name exist without records (NOERROR, empty answers).
func (s *Server) Known(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[canon(name)]; !ok {
		s.records[canon(name)] = []dnsmessage.Resource{}
	}
}

// Delete removes name and all its records (NXDOMAIN afterwards).
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, canon(name))
}

// SetA sets name's A records (IPv4 addresses).
func (s *Server) SetA(name string, ips ...string) {
	var bodies []dnsmessage.ResourceBody
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			s.t.Fatalf("dnstest: bad IPv4 address %q", ip)
		}
		bodies = append(bodies, &dnsmessage.AResource{A: a.As4()})
	}
	s.set(name, dnsmessage.TypeA, bodies...)
}

// SetAAAA sets name's AAAA records (IPv6 addresses).
func (s *Server) SetAAAA(name string, ips ...string) {
	var bodies []dnsmessage.ResourceBody
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is6() || a.Is4In6() {
			s.t.Fatalf("dnstest: bad IPv6 address %q", ip)
		}
		bodies = append(bodies, &dnsmessage.AAAAResource{AAAA: a.As16()})
	}
	s.set(name, dnsmessage.TypeAAAA, bodies...)
}

// MX is one MX record.
type MX struct {
	Pref uint16
	Host string // "." for a null MX (RFC 7505)
}

// SetMX sets name's MX records.
func (s *Server) SetMX(name string, mxs ...MX) {
	var bodies []dnsmessage.ResourceBody
	for _, mx := range mxs {
		var host dnsmessage.Name
		if mx.Host == "." {
			host = dnsmessage.MustNewName(".")
		} else {
			host = s.mustName(mx.Host)
		}
		bodies = append(bodies, &dnsmessage.MXResource{Pref: mx.Pref, MX: host})
	}
	s.set(name, dnsmessage.TypeMX, bodies...)
}

// SetNullMX sets name's MX to the null MX "0 ." (RFC 7505: no mail).
func (s *Server) SetNullMX(name string) { s.SetMX(name, MX{0, "."}) }

// SetTXT sets name's TXT records, one per text; a text longer than 255
// bytes is split into 255-byte character-strings, as zone files do (RFC
// 7208 §3.3: readers concatenate them).
func (s *Server) SetTXT(name string, texts ...string) {
	var bodies []dnsmessage.ResourceBody
	for _, txt := range texts {
		bodies = append(bodies, &dnsmessage.TXTResource{TXT: SplitTXT(txt)})
	}
	s.set(name, dnsmessage.TypeTXT, bodies...)
}

// SplitTXT splits s into character-strings of at most 255 bytes.
func SplitTXT(s string) []string {
	parts := []string{}
	for len(s) > 255 {
		parts = append(parts, s[:255])
		s = s[255:]
	}
	return append(parts, s)
}

// TLSA is one TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage, Selector, MatchType uint8
	Data                       []byte
}

// SetTLSA sets name's TLSA records (name like "_25._tcp.mx.example.").
func (s *Server) SetTLSA(name string, recs ...TLSA) {
	var bodies []dnsmessage.ResourceBody
	for _, r := range recs {
		data := append([]byte{r.Usage, r.Selector, r.MatchType}, r.Data...)
		bodies = append(bodies, &dnsmessage.UnknownResource{Type: TypeTLSA, Data: data})
	}
	s.set(name, TypeTLSA, bodies...)
}

// SRV is one SRV record (RFC 2782); Target "." says the service is not
// offered.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// SetSRV sets name's SRV records (name like "_imaps._tcp.example.").
func (s *Server) SetSRV(name string, recs ...SRV) {
	var bodies []dnsmessage.ResourceBody
	for _, r := range recs {
		t := dnsmessage.MustNewName(".")
		if r.Target != "." {
			t = s.mustName(r.Target)
		}
		bodies = append(bodies, &dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: t})
	}
	s.set(name, dnsmessage.TypeSRV, bodies...)
}

// SetPTR sets the reverse DNS of ip (its in-addr.arpa or ip6.arpa name)
// to hosts.
func (s *Server) SetPTR(ip string, hosts ...string) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		s.t.Fatalf("dnstest: bad IP address %q", ip)
	}
	var name string
	if a.Is4() {
		b := a.As4()
		name = fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
	} else {
		b := a.As16()
		var parts []string
		for i := 15; i >= 0; i-- {
			parts = append(parts, fmt.Sprintf("%x.%x", b[i]&0xf, b[i]>>4))
		}
		name = strings.Join(parts, ".") + ".ip6.arpa"
	}
	var bodies []dnsmessage.ResourceBody
	for _, h := range hosts {
		bodies = append(bodies, &dnsmessage.PTRResource{PTR: s.mustName(h)})
	}
	s.set(name, dnsmessage.TypePTR, bodies...)
}

// SetCNAME makes name an alias of target (it replaces name's other
// records, as a CNAME cannot coexist with them).
func (s *Server) SetCNAME(name, target string) {
	n := s.mustName(name)
	t := s.mustName(target)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[canon(name)] = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: n, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: 60}, Body: &dnsmessage.CNAMEResource{CNAME: t}}}
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, addr, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		resp := s.answer(buf[:n], true)
		if resp != nil {
			s.udp.WriteTo(resp, addr)
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// serveConn answers length-prefixed questions on one TCP connection (RFC
// 1035 §4.2.2) until the peer closes it or goes quiet.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	for i := 0; i < 100; i++ {
		c.SetDeadline(time.Now().Add(ioTimeout))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := s.answer(msg, false)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer returns the response to the query in msg, or nil to say nothing.
func (s *Server) answer(msg []byte, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil
	}
	limit := 512
	if err := p.SkipAllAnswers(); err == nil {
		if err := p.SkipAllAuthorities(); err == nil {
			for {
				rh, err := p.AdditionalHeader()
				if err != nil {
					break
				}
				if rh.Type == dnsmessage.TypeOPT && int(rh.Class) > limit {
					limit = int(rh.Class) // RFC 6891 §6.1.2: the requestor's UDP payload size.
				}
				if err := p.SkipAdditional(); err != nil {
					break
				}
			}
		}
	}

	s.mu.Lock()
	s.queries++
	if !udp {
		s.tcpAsked++
	}
	if s.udpLimit > 0 {
		limit = s.udpLimit
	}
	resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true, AuthenticData: s.authentic}}
	if h.OpCode != 0 || len(qs) != 1 {
		resp.Header.RCode = dnsmessage.RCodeNotImplemented
		if len(qs) == 1 {
			resp.Questions = qs
		}
	} else {
		q := qs[0]
		resp.Questions = qs
		resp.Answers, resp.Header.RCode = s.lookup(q)
	}
	s.mu.Unlock()

	out, err := resp.Pack()
	if err != nil {
		s.t.Logf("dnstest: pack answer: %v", err)
		resp.Answers = nil
		resp.Header.RCode = dnsmessage.RCodeServerFailure
		out, _ = resp.Pack()
	}
	if udp && len(out) > limit {
		// RFC 1035 §4.1.1, RFC 7766 §5: too large for UDP; the
		// resolver asks again over TCP.
		resp.Answers = nil
		resp.Header.Truncated = true
		out, _ = resp.Pack()
	}
	return out
}

// lookup finds the answers for q, following CNAMEs in the zone. The caller
// holds s.mu.
func (s *Server) lookup(q dnsmessage.Question) ([]dnsmessage.Resource, dnsmessage.RCode) {
	if q.Class != dnsmessage.ClassINET {
		return nil, dnsmessage.RCodeRefused
	}
	name := strings.ToLower(q.Name.String())
	var answers []dnsmessage.Resource
	for hops := 0; hops < 8; hops++ {
		rrs, ok := s.records[name]
		if !ok {
			if hops == 0 {
				return nil, dnsmessage.RCodeNameError
			}
			// The CNAME points out of the zone: the answer so far
			// is all we have; RCODE is that of the last name (RFC
			// 6604), NXDOMAIN here.
			return answers, dnsmessage.RCodeNameError
		}
		var cname *dnsmessage.CNAMEResource
		for _, r := range rrs {
			if r.Header.Type == q.Type {
				r.Header.Name = q.Name
				if hops > 0 {
					r.Header.Name = dnsmessage.MustNewName(name)
				}
				answers = append(answers, r)
			} else if c, ok := r.Body.(*dnsmessage.CNAMEResource); ok {
				cname = c
			}
		}
		if cname == nil || q.Type == dnsmessage.TypeCNAME {
			return answers, dnsmessage.RCodeSuccess
		}
		cr := dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: 60}, Body: cname}
		answers = append(answers, cr)
		name = strings.ToLower(cname.CNAME.String())
	}
	return nil, dnsmessage.RCodeServerFailure
}
