// Package msgauth checks mail arriving from other servers: SPF (RFC 7208)
// for the client address and the MAIL FROM and HELO identities, DKIM
// signatures (RFC 6376), and the From domain's DMARC policy (RFC 7489).
// The results become an Authentication-Results header field (RFC 8601) and
// a verdict the SMTP server acts on.
package msgauth

import "net"

// Action is what to do with a message after the checks.
type Action int

const (
	// Accept: deliver normally.
	Accept Action = iota
	// Quarantine: deliver into the recipient's Junk mailbox (DMARC
	// p=quarantine failed).
	Quarantine
	// Reject: refuse with 550 5.7.1 (DMARC p=reject failed).
	Reject
)

// Input describes the SMTP transaction a message came in.
type Input struct {
	// IP is the client's address.
	IP net.IP
	// HELO is the name the client gave in EHLO/HELO.
	HELO string
	// MailFrom is the reverse path, "" for the null sender.
	MailFrom string
}

// Verdict is the outcome of Verify.
type Verdict struct {
	// Header is the Authentication-Results field to prepend to the
	// message, ending in CRLF.
	Header string
	// Action is what the SMTP server does.
	Action Action
	// Reason explains a Reject or Quarantine, for the log and the reply
	// text.
	Reason string
}
