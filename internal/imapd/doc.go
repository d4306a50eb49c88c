// Package imapd is jodmai's IMAP server: IMAP4rev2 (RFC 9051) and IMAP4rev1
// (RFC 3501) with the extensions modern clients use, over the mail store.
//
// Files: server.go (listener lifecycle), session.go (one connection: the
// command loop, dispatch, tagged replies), commands.go (the command table:
// each command's handler, the states it is valid in, and the capabilities
// it advertises), selected.go (the selected mailbox's message-sequence
// view and how other sessions' changes reach it), cmd_*.go (one file per
// command family: cmd_list.go is LIST and LSUB, cmd_mailbox.go the other
// mailbox commands, cmd_search.go SEARCH, SORT and THREAD), and their
// helpers named after the command: fetch_*.go (rows and body sections),
// search_*.go (evaluation, text matching), sort_keys.go; keywords.go and
// recent.go (per-session flag state), compress_deflate.go (COMPRESS's
// writer).
//
// Adding a command: write its handler in the cmd_*.go of its family (a new
// file for a new family), parse its arguments with the Decoder of package
// imapwire (adding a Parse* function there when the syntax is new), and
// add one entry to commandTable with the capabilities it brings.
//
// What is not session glue lives beside it: package imapwire (the wire
// syntax: decoder, encoder, modified UTF-7), package inflate (COMPRESS's
// DEFLATE decoder), packages message/mimetext (transfer decoding,
// charsets, HTML to text, PREVIEW) and message/thread (RFC 5256 base
// subject and threading).
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
