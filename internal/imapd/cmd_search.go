package imapd

// TODO(helper A): SEARCH (ESEARCH, SEARCHRES), SORT, THREAD.
func cmdSearch(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
func cmdSort(s *session, tag, name string, uid bool) error   { return no("", "not implemented") }
func cmdThread(s *session, tag, name string, uid bool) error { return no("", "not implemented") }
