package console

import (
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"

	"github.com/jodmai/jodmai/internal/dnsrecords"
)

// This file: the Apple configuration profile (a .mobileconfig) that sets
// up Mail on iOS and macOS for the logged-in account: its IMAP (or POP3)
// and submission servers, with the password left for the device to ask.
// Apple's "Configuration Profile Reference", payload com.apple.mail.managed.

// appleProfile writes the profile for the logged-in account.
func (c *Console) appleProfile(w http.ResponseWriter, r *request) {
	in, out := pick(c.Services, "imap"), pick(c.Services, "smtp")
	if in == nil {
		in = pick(c.Services, "pop3")
	}
	if in == nil || out == nil {
		c.errorPage(w, r, http.StatusNotFound, "This server has no IMAP or POP3 and submission listeners to configure.")
		return
	}
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="`+c.Hostname+`.mobileconfig"`)
	w.Write([]byte(AppleProfile(c.Hostname, r.acc.Address, *in, *out)))
}

// pick returns the first enabled service of proto (implicit TLS comes
// first in dnsrecords.Services).
func pick(services []dnsrecords.Service, proto string) *dnsrecords.Service {
	for i := range services {
		if services[i].Proto == proto && services[i].Port != 0 {
			return &services[i]
		}
	}
	return nil
}

// AppleProfile returns an unsigned configuration profile (an XML property
// list) with one mail account for address: incoming server in (IMAP or
// POP3), outgoing server out (submission), both on hostname, logging in
// with the address. Its identifiers derive from hostname and address, so
// installing a newer one replaces the older.
func AppleProfile(hostname, address string, in, out dnsrecords.Service) string {
	accountType := "EmailTypeIMAP"
	if in.Proto == "pop3" {
		accountType = "EmailTypePOP"
	}
	id := "org.jodmai." + reverse(hostname)
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	b.WriteString("<key>PayloadContent</key>\n<array>\n<dict>\n")
	plist(&b, "EmailAccountDescription", address)
	plist(&b, "EmailAccountName", address)
	plist(&b, "EmailAccountType", accountType)
	plist(&b, "EmailAddress", address)
	plist(&b, "IncomingMailServerAuthentication", "EmailAuthPassword")
	plist(&b, "IncomingMailServerHostName", hostname)
	plist(&b, "IncomingMailServerPortNumber", in.Port)
	// UseSSL: TLS, implicit or by STARTTLS; jodmai refuses passwords in
	// the clear off loopback anyway.
	plist(&b, "IncomingMailServerUseSSL", true)
	plist(&b, "IncomingMailServerUsername", address)
	plist(&b, "OutgoingMailServerAuthentication", "EmailAuthPassword")
	plist(&b, "OutgoingMailServerHostName", hostname)
	plist(&b, "OutgoingMailServerPortNumber", out.Port)
	plist(&b, "OutgoingMailServerUseSSL", true)
	plist(&b, "OutgoingMailServerUsername", address)
	plist(&b, "OutgoingPasswordSameAsIncomingPassword", true)
	plist(&b, "PayloadDisplayName", "Mail: "+address)
	plist(&b, "PayloadIdentifier", id+".mail."+address)
	plist(&b, "PayloadType", "com.apple.mail.managed")
	plist(&b, "PayloadUUID", uuidOf("mail", hostname, address))
	plist(&b, "PayloadVersion", 1)
	b.WriteString("</dict>\n</array>\n")
	plist(&b, "PayloadDisplayName", address+" on "+hostname)
	plist(&b, "PayloadIdentifier", id+"."+address)
	plist(&b, "PayloadRemovalDisallowed", false)
	plist(&b, "PayloadType", "Configuration")
	plist(&b, "PayloadUUID", uuidOf("profile", hostname, address))
	plist(&b, "PayloadVersion", 1)
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}

// plist writes one key and its value (string, integer or boolean).
func plist(b *strings.Builder, key string, v any) {
	b.WriteString("<key>")
	xml.EscapeText(b, []byte(key))
	b.WriteString("</key>\n")
	switch v := v.(type) {
	case bool:
		if v {
			b.WriteString("<true/>\n")
		} else {
			b.WriteString("<false/>\n")
		}
	case int:
		fmt.Fprintf(b, "<integer>%d</integer>\n", v)
	default:
		b.WriteString("<string>")
		xml.EscapeText(b, []byte(fmt.Sprint(v)))
		b.WriteString("</string>\n")
	}
}

// reverse turns mail.example.org into org.example.mail.
func reverse(host string) string {
	parts := strings.Split(host, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// uuidOf is a name-based UUID (SHA-256 truncated, version 8 per RFC 9562
// §5.8) of its parts.
func uuidOf(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
