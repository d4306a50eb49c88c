package imapd

// TODO(helper C): COMPRESS=DEFLATE (RFC 4978).
func cmdCompress(s *session, tag, name string, uid bool) error {
	return no("", "not implemented")
}
