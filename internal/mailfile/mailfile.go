// Package mailfile reads and writes the two file formats mail lives in
// outside a server: mbox (one file, messages separated by "From " lines) and
// Maildir (one file per message, flags in the file name).
//
// Every reader streams: a message is handed out as an io.Reader and never
// held whole in memory, so a multi-gigabyte mbox costs a fixed buffer.
// Readers return the bytes as they are in the file (line ends included);
// callers that store CRLF convert on the way (message.NewCRLFWriter).
// Writers take LF text (ToLF converts a stored CRLF message on the way) and
// WithStatus sets an mbox message's Status fields from its flags.
//
// Maildir is the one Maildir implementation of the project, for a program
// that keeps mail in one message by message (the user agent, package ua):
// each message is written in tmp/ and fsynced, renamed into new/ or cur/,
// and that directory fsynced before it counts as stored. A MaildirWriter
// (export) writes many messages into one: each file is fsynced before it
// is renamed into cur/, and cur/ is fsynced per batch and at Close. An
// MboxWriter writes to the caller's file, which the caller fsyncs.
// Directory fsyncs and durable directory creation go through package
// safeio.
package mailfile

import "strings"

// Flags are the message flags the two formats carry, as a bit set.
type Flags uint8

// The flags. Passed (Maildir "P", forwarded/bounced) has no IMAP system
// flag; importers keep it as the keyword $Forwarded.
const (
	Seen Flags = 1 << iota
	Answered
	Flagged
	Deleted
	Draft
	Passed
)

// String lists the flags as their Maildir letters, in ASCII order.
func (f Flags) String() string { return f.maildirLetters() }

// maildirLetters is the Maildir info letters for f, in ASCII order as the
// Maildir specification requires: D F P R S T.
func (f Flags) maildirLetters() string {
	var b strings.Builder
	for _, x := range []struct {
		f Flags
		c byte
	}{{Draft, 'D'}, {Flagged, 'F'}, {Passed, 'P'}, {Answered, 'R'}, {Seen, 'S'}, {Deleted, 'T'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}
