// Package remote delivers messages to other mail servers over SMTP: MX
// lookup (with the RFC 5321 §5.1 fallback to the domain's address, and null
// MX per RFC 7505), hosts tried in preference order, opportunistic
// STARTTLS, MTA-STS (RFC 8461) and DANE (RFC 7672) policies, REQUIRETLS
// (RFC 8689), PIPELINING, CHUNKING, SMTPUTF8 and 8BITMIME. It also signs
// outbound mail with DKIM (dkim.go).
//
// It holds no state on disk: the queue (internal/queue) decides what to
// deliver when, and records the per-recipient results Deliver returns.
package remote

import (
	"context"
	"io"
)

// Message is one delivery attempt: one envelope sender, recipients that
// all share one destination domain, and the message.
type Message struct {
	// From is the reverse path; "" is the null sender (bounces, RFC 5321
	// §4.5.5).
	From string
	// Domain is the destination domain every recipient is at (ASCII or
	// UTF-8; it is looked up in its A-label form).
	Domain string
	// Recipients of this attempt, all at Domain.
	Recipients []Recipient
	// Header is sent before Body, unchanged: header fields added for this
	// delivery (a DKIM-Signature), each ending in CRLF. May be empty.
	Header []byte
	// Body is the stored message, CRLF line ends, Size bytes.
	Body io.ReaderAt
	Size int64
	// SMTPUTF8 says the envelope or header has UTF-8 addresses: the peer
	// must offer SMTPUTF8 or the message bounces (RFC 6531 §3.2).
	SMTPUTF8 bool
	// Has8bit says the body has 8-bit data: sent with BODY=8BITMIME when
	// offered.
	Has8bit bool
	// RequireTLS (RFC 8689): only over verified TLS, and the peer must
	// offer REQUIRETLS.
	RequireTLS bool
	// EnvID and Ret are the RFC 3461 MAIL parameters ENVID and RET
	// ("FULL", "HDRS" or ""), passed on when the peer offers DSN. EnvID
	// is sent as is when it is valid xtext (as received), xtext-encoded
	// otherwise; so is the address part of Recipient.ORcpt.
	EnvID string
	Ret   string
}

// Recipient is one RCPT TO with its RFC 3461 parameters.
type Recipient struct {
	// Addr is the address, without angle brackets.
	Addr string
	// Notify is the NOTIFY parameter as received ("NEVER", or a
	// comma-separated list of SUCCESS, FAILURE, DELAY); "" if none.
	Notify string
	// ORcpt is the ORCPT parameter as received ("rfc822;addr"); "" if
	// none.
	ORcpt string
}

// Result is the outcome of a delivery attempt for one recipient.
type Result struct {
	// Addr is Recipient.Addr.
	Addr string
	// Delivered: the remote server accepted the message for this
	// recipient (250 after DATA or the last BDAT).
	Delivered bool
	// Permanent: a permanent failure (5xx, null MX, no such domain, ...):
	// do not retry. Neither Delivered nor Permanent: retry later.
	Permanent bool
	// Code and Enhanced are the SMTP reply code and enhanced status
	// ("5.1.1"), ours when the failure was local (DNS, connect, TLS
	// policy).
	Code     int
	Enhanced string
	// Text is the reply text or a description of the local failure, for
	// the queue's log and the DSN's Diagnostic-Code.
	Text string
	// Host is the MX host whose reply decided the result, for the DSN's
	// Remote-MTA; "" when the result was decided here (Local).
	Host string
	// Local: the result was decided by this server (DNS, connection,
	// TLS policy, a missing extension), not by a remote server's reply.
	Local bool
	// DSN, for a delivered recipient: the server offered DSN (RFC 3461),
	// so NOTIFY and ORCPT were passed on and it reports from here on.
	// When false, a recipient whose NOTIFY has SUCCESS is owed a
	// "relayed" DSN (RFC 3461 §4.2).
	DSN bool
}

// Deliverer delivers messages. *Client implements it; tests of the queue
// use fakes.
type Deliverer interface {
	// Deliver makes one attempt to deliver m and returns one Result per
	// recipient, in m.Recipients order. It does not retry later; it does
	// try every MX host in order within the attempt. It returns when ctx
	// ends.
	Deliver(ctx context.Context, m *Message) []Result
}
