package imapd

// TODO(helper B): CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB NAMESPACE STATUS.
func cmdCreate(s *session, tag, name string, uid bool) error    { return no("", "not implemented") }
func cmdDelete(s *session, tag, name string, uid bool) error    { return no("", "not implemented") }
func cmdRename(s *session, tag, name string, uid bool) error    { return no("", "not implemented") }
func cmdSubscribe(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
func cmdList(s *session, tag, name string, uid bool) error      { return no("", "not implemented") }
func cmdLsub(s *session, tag, name string, uid bool) error      { return no("", "not implemented") }
func cmdNamespace(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
func cmdStatus(s *session, tag, name string, uid bool) error    { return no("", "not implemented") }
