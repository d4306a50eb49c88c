package imapd

// TODO(helper B): QUOTA (RFC 9208).
func cmdGetQuota(s *session, tag, name string, uid bool) error     { return no("", "not implemented") }
func cmdGetQuotaRoot(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
func cmdSetQuota(s *session, tag, name string, uid bool) error     { return no("", "not implemented") }
