// Package mimetext owns turning MIME data into plain UTF-8 text, as
// streams: Content-Transfer-Encoding decoding (RFC 2045 §6: CTEReader),
// charset conversion (CharsetReader), HTML tag removal (TextReader), RFC
// 2047 header words with every charset go-message knows (DecodeHeader), and
// the RFC 8970 preview of a message (Preview).
//
// Invariants: the decoders are lenient the way mail readers are —
// malformed input decodes to something rather than to an error — and
// deterministic, so a size computed in one pass matches the data of the
// next (IMAP BINARY.SIZE then BINARY). No body is held in memory: every
// decoder reads through a small buffer. Read errors of the underlying file
// are kept by ErrReader for callers whose decoders stop quietly. Nothing
// here knows IMAP; imapd's FETCH (BINARY, PREVIEW) and SEARCH (BODY, TEXT)
// and the base subject of package thread use it.
package mimetext
