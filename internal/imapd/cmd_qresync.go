package imapd

// TODO(helper C): QRESYNC select: VANISHED (EARLIER) and FETCH of changes since the client's MODSEQ.
func (s *session) qresyncSelect(q *QResync) error { return nil }
