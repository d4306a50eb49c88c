package imapd

// TODO(helper B): COPY, MOVE and UID forms with COPYUID (UIDPLUS).
func cmdCopy(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
func cmdMove(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
