package imapd

import (
	"slices"
	"strconv"
	"strings"
)

// commandTable maps command names to handlers (RFC 9051 §6 and the
// extensions in the capability list) and to the capabilities each brings
// (caps): CAPABILITY, the greeting and LOGIN's response code list them
// (see capabilityList), so a command and its advertisement are added in
// one place.
func commandTable() map[string]command {
	return map[string]command{
		// Any state.
		"CAPABILITY": {fn: cmdCapability, states: stateAny},
		"NOOP":       {fn: cmdNoop, states: stateAny},
		"LOGOUT":     {fn: cmdLogout, states: stateAny},
		"ID":         {fn: cmdID, states: stateAny, caps: caps("ID")},
		// Not authenticated.
		"STARTTLS": {fn: cmdStartTLS, states: stateNotAuth,
			caps: []capability{{name: "STARTTLS", when: (*session).offerStartTLS}}},
		"LOGIN": {fn: cmdLogin, states: stateNotAuth,
			caps: []capability{{name: "LOGINDISABLED", when: (*session).loginDisabled}}},
		"AUTHENTICATE": {fn: cmdAuthenticate, states: stateNotAuth,
			caps: []capability{
				{name: "AUTH=PLAIN", when: (*session).offerPlaintext},
				{name: "AUTH=LOGIN", when: (*session).offerPlaintext},
				{name: "SASL-IR"},
			}},
		// Authenticated (and selected).
		"ENABLE": {fn: cmdEnable, states: stateAuth, caps: caps("ENABLE", "UTF8=ACCEPT")},
		"COMPRESS": {fn: cmdCompress, states: stateAuthOrSel,
			// RFC 4978 §3: not advertised once compression is active.
			caps: []capability{{name: "COMPRESS=DEFLATE", when: func(s *session) bool { return !s.compressed }}}},
		"SELECT":      {fn: cmdSelect, states: stateAuthOrSel, caps: caps("CONDSTORE", "QRESYNC")},
		"EXAMINE":     {fn: cmdSelect, states: stateAuthOrSel},
		"CREATE":      {fn: cmdCreate, states: stateAuthOrSel, caps: caps("CREATE-SPECIAL-USE")},
		"DELETE":      {fn: cmdDelete, states: stateAuthOrSel},
		"RENAME":      {fn: cmdRename, states: stateAuthOrSel},
		"SUBSCRIBE":   {fn: cmdSubscribe, states: stateAuthOrSel},
		"UNSUBSCRIBE": {fn: cmdSubscribe, states: stateAuthOrSel},
		"LIST": {fn: cmdList, states: stateAuthOrSel,
			caps: caps("CHILDREN", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS")},
		"LSUB":      {fn: cmdLsub, states: stateAuthOrSel},
		"NAMESPACE": {fn: cmdNamespace, states: stateAuthOrSel, caps: caps("NAMESPACE")},
		"STATUS":    {fn: cmdStatus, states: stateAuthOrSel, caps: caps("STATUS=SIZE")},
		"APPEND": {fn: cmdAppend, states: stateAuthOrSel,
			caps: []capability{
				{name: "MULTIAPPEND"},
				{name: "APPENDLIMIT=", value: func(s *session) string { return strconv.FormatInt(s.lim.appendLimit(), 10) }},
			}},
		"IDLE":         {fn: cmdIdle, states: stateAuthOrSel, caps: caps("IDLE")},
		"GETQUOTA":     {fn: cmdGetQuota, states: stateAuthOrSel, caps: caps("QUOTA", "QUOTA=RES-STORAGE")},
		"GETQUOTAROOT": {fn: cmdGetQuotaRoot, states: stateAuthOrSel},
		"SETQUOTA":     {fn: cmdSetQuota, states: stateAuthOrSel},
		// Selected.
		"CLOSE":    {fn: cmdClose, states: stateSelected},
		"UNSELECT": {fn: cmdUnselect, states: stateSelected, caps: caps("UNSELECT")},
		"CHECK":    {fn: cmdNoop, states: stateSelected},
		// UIDPLUS (RFC 4315): UID EXPUNGE here, APPENDUID and COPYUID in
		// the replies of APPEND, COPY and MOVE.
		"EXPUNGE": {fn: cmdExpunge, states: stateSelected, uid: true, caps: caps("UIDPLUS")},
		"SEARCH":  {fn: cmdSearch, states: stateSelected, uid: true, seqResponse: true, caps: caps("ESEARCH", "SEARCHRES")},
		"SORT":    {fn: cmdSort, states: stateSelected, uid: true, seqResponse: true, caps: caps("SORT")},
		"THREAD": {fn: cmdThread, states: stateSelected, uid: true, seqResponse: true,
			caps: caps("THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")},
		"FETCH": {fn: cmdFetch, states: stateSelected, uid: true, seqResponse: true,
			caps: caps("BINARY", "OBJECTID", "PREVIEW", "SAVEDATE")},
		"STORE": {fn: cmdStore, states: stateSelected, uid: true, seqResponse: true},
		"COPY":  {fn: cmdCopy, states: stateSelected, uid: true},
		"MOVE":  {fn: cmdMove, states: stateSelected, uid: true, caps: caps("MOVE")},
	}
}

// sessionCapabilities are advertised first and belong to no one command:
// the protocol versions served, and non-synchronizing literals in every
// command (RFC 7888, the decoder's).
var sessionCapabilities = caps("IMAP4rev1", "IMAP4rev2", "LITERAL+")

// capability is one CAPABILITY atom (RFC 9051 §7.2.2).
type capability struct {
	name string
	// when, if set, says whether the session offers it now.
	when func(s *session) bool
	// value, if set, completes the name (APPENDLIMIT=n).
	value func(s *session) string
}

// caps returns capabilities offered unconditionally.
func caps(names ...string) []capability {
	out := make([]capability, len(names))
	for i, n := range names {
		out[i] = capability{name: n}
	}
	return out
}

// capabilityList is every capability of cmds, sessionCapabilities first,
// then by command name.
func capabilityList(cmds map[string]command) []capability {
	out := slices.Clone(sessionCapabilities)
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		out = append(out, cmds[name].caps...)
	}
	return out
}

// capabilities lists what the server offers in the current state.
func (s *session) capabilities() string {
	var b strings.Builder
	for _, c := range s.srv.caps {
		if c.when != nil && !c.when(s) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c.name)
		if c.value != nil {
			b.WriteString(c.value(s))
		}
	}
	return b.String()
}

// offerStartTLS: STARTTLS is offered before login on a plain connection
// of a server with a certificate.
func (s *session) offerStartTLS() bool {
	return s.state == stateNotAuth && s.srv.TLSConfig != nil && !s.isTLS
}

// offerPlaintext: AUTH=PLAIN and AUTH=LOGIN are offered before login where
// plaintext authentication is allowed (RFC 9051 §6.2.3, §11.1).
func (s *session) offerPlaintext() bool {
	return s.state == stateNotAuth && s.plaintextAllowed()
}

// loginDisabled: LOGINDISABLED is advertised before login where plaintext
// authentication is not allowed (RFC 9051 §6.2.3).
func (s *session) loginDisabled() bool {
	return s.state == stateNotAuth && !s.plaintextAllowed()
}
