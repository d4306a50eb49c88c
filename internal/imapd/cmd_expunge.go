package imapd

// TODO(helper B): EXPUNGE and UID EXPUNGE.
func cmdExpunge(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
