package imapd

// TODO(helper A): FETCH.
func cmdFetch(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
