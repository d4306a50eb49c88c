package imapd

// TODO(helper A): STORE.
func cmdStore(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
