// Package thread owns RFC 5256's message grouping, on plain data so it can
// be tested without a mailbox: the base subject of a Subject header
// (BaseSubject, §2.1, which SORT SUBJECT uses too), the ORDEREDSUBJECT and
// REFERENCES threading algorithms (§3) and the thread-list form of their
// result (Append, §4).
//
// The caller (imapd's THREAD) loads each message's Msg: its sent date,
// base subject in i;ascii-casemap form, Message-ID and references
// (ParseIDs). The algorithms are deterministic: ties fall back to the
// sequence number.
package thread
