// Package pop3d is jodmai's POP3 server: RFC 1939 (with APOP), RFC 2449
// (CAPA, response codes, PIPELINING), RFC 2595 (STLS), RFC 3206 (SYS and
// AUTH response codes) and RFC 5034 (AUTH with SASL PLAIN and LOGIN).
//
// A session moves AUTHORIZATION -> TRANSACTION -> UPDATE (RFC 1939 §3).
// Its invariants:
//
//   - A session enters TRANSACTION only while it holds the account's
//     maildrop lock (store.LockMaildrop, RFC 1939 §8); the lock is released
//     whenever the session ends, however it ends.
//   - On entering TRANSACTION the session takes a snapshot of INBOX: message
//     numbers 1..n, sizes and UIDLs are fixed for the whole session, and mail
//     that arrives meanwhile is seen by the next session only.
//   - DELE only marks. Only QUIT in TRANSACTION enters UPDATE, which removes
//     every marked message in one store transaction (store.Expunge). A
//     dropped connection, an autologout, a panic or a server shutdown
//     removes nothing.
//   - Message bodies are streamed from the store's file, dot-stuffed on the
//     fly through a pooled buffer; no message is ever held in memory whole.
//     Sizes reported by STAT and LIST are the stored sizes: CRLF line ends,
//     before dot-stuffing.
//   - Passwords in the clear (USER/PASS, AUTH PLAIN, AUTH LOGIN) are
//     accepted only over TLS or from loopback (auth.PlaintextAllowed).
//   - Input is read with bounded memory: an over-long line is answered
//     with -ERR and discarded; replies are flushed only when no further
//     complete command is buffered, so pipelined clients (RFC 2449 §6.6)
//     get their replies in batches.
package pop3d
