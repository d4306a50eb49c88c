// Package imapd is jodmai's IMAP server: IMAP4rev2 (RFC 9051) and IMAP4rev1
// (RFC 3501) with the extensions modern clients use, over the mail store.
//
// Files: server.go (listener lifecycle), session.go (one connection: the
// command loop, dispatch, tagged replies), selected.go (the selected
// mailbox's message-sequence view and how other sessions' changes reach
// it) and cmd_*.go (one file per command family). The syntax, decoder and
// encoder, is package imapwire.
//
// Invariants:
//   - A session reads commands and writes responses from one goroutine; only
//     IDLE runs a second goroutine, which reads the DONE line while the
//     session goroutine writes updates.
//   - Message sequence numbers belong to the session. Changes made by others
//     arrive through a store.Subscription wake-up and Account.Changes, and
//     are announced at command ends (EXISTS, FETCH FLAGS) — EXPUNGE only where
//     RFC 9051 §7.5.1 allows it (never after a non-UID FETCH, STORE or
//     SEARCH); until then the expunged message keeps its number.
//   - Nothing here touches the disk except through the store.
package imapd
