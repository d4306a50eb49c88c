// Package imapwire is jodmai's IMAP wire codec: the syntax of IMAP4rev2
// (RFC 9051 §9) and IMAP4rev1 (RFC 3501 §9), with the extensions imapd
// serves, and none of their meaning. imapd owns the session, the command
// table and every decision; this package only reads commands and writes
// response data.
//
// Files: decode.go (Decoder: the grammar's primitives, read incrementally
// straight from the connection's *bufio.Reader), fetch.go, search.go and
// misc.go (the Parse* functions that turn one command's arguments into a
// *XxxCommand), encode.go (Encoder: response data, ENVELOPE and
// BODYSTRUCTURE, message data streamed from an io.Reader) and utf7.go
// (modified UTF-7 mailbox names, which import and export use too).
//
// Invariants:
//   - No input makes the Decoder panic. A failure caused by the client's
//     bytes is a *SyntaxError, *LimitError, *LiteralTooBigError or
//     *MailboxNameError (IsProtocolError); any other error is the
//     connection's.
//   - Memory per command is bounded (DecoderOptions); a streamed literal
//     (LiteralReader) is never held.
//   - The codec keeps no session state beyond what the session sets on it
//     (SetUTF8 after ENABLE UTF8=ACCEPT or IMAP4rev2).
//   - Nothing here touches the disk or the store: store and message types
//     appear only as values (flags, envelope, body structure).
//
// Every parser has a fuzz target (fuzz_test.go, utf7_test.go); its corpus
// of past failures is testdata/fuzz.
package imapwire
