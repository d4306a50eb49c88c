package imapd

// TODO(helper B): APPEND with MULTIAPPEND, BINARY literal8, UIDPLUS APPENDUID, APPENDLIMIT.
func cmdAppend(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
