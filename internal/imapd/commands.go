package imapd

// commandTable maps command names to handlers (RFC 9051 §6 and the
// extensions in the capability list).
func commandTable() map[string]command {
	return map[string]command{
		// Any state.
		"CAPABILITY": {fn: cmdCapability, states: stateAny},
		"NOOP":       {fn: cmdNoop, states: stateAny},
		"LOGOUT":     {fn: cmdLogout, states: stateAny},
		"ID":         {fn: cmdID, states: stateAny},
		// Not authenticated.
		"STARTTLS":     {fn: cmdStartTLS, states: stateNotAuth},
		"LOGIN":        {fn: cmdLogin, states: stateNotAuth},
		"AUTHENTICATE": {fn: cmdAuthenticate, states: stateNotAuth},
		// Authenticated (and selected).
		"ENABLE":       {fn: cmdEnable, states: stateAuth},
		"COMPRESS":     {fn: cmdCompress, states: stateAuthOrSel},
		"SELECT":       {fn: cmdSelect, states: stateAuthOrSel},
		"EXAMINE":      {fn: cmdSelect, states: stateAuthOrSel},
		"CREATE":       {fn: cmdCreate, states: stateAuthOrSel},
		"DELETE":       {fn: cmdDelete, states: stateAuthOrSel},
		"RENAME":       {fn: cmdRename, states: stateAuthOrSel},
		"SUBSCRIBE":    {fn: cmdSubscribe, states: stateAuthOrSel},
		"UNSUBSCRIBE":  {fn: cmdSubscribe, states: stateAuthOrSel},
		"LIST":         {fn: cmdList, states: stateAuthOrSel},
		"LSUB":         {fn: cmdLsub, states: stateAuthOrSel},
		"NAMESPACE":    {fn: cmdNamespace, states: stateAuthOrSel},
		"STATUS":       {fn: cmdStatus, states: stateAuthOrSel},
		"APPEND":       {fn: cmdAppend, states: stateAuthOrSel},
		"IDLE":         {fn: cmdIdle, states: stateAuthOrSel},
		"GETQUOTA":     {fn: cmdGetQuota, states: stateAuthOrSel},
		"GETQUOTAROOT": {fn: cmdGetQuotaRoot, states: stateAuthOrSel},
		"SETQUOTA":     {fn: cmdSetQuota, states: stateAuthOrSel},
		// Selected.
		"CLOSE":    {fn: cmdClose, states: stateSelected},
		"UNSELECT": {fn: cmdUnselect, states: stateSelected},
		"CHECK":    {fn: cmdNoop, states: stateSelected},
		"EXPUNGE":  {fn: cmdExpunge, states: stateSelected, uid: true},
		"SEARCH":   {fn: cmdSearch, states: stateSelected, uid: true, seqResponse: true},
		"SORT":     {fn: cmdSort, states: stateSelected, uid: true, seqResponse: true},
		"THREAD":   {fn: cmdThread, states: stateSelected, uid: true, seqResponse: true},
		"FETCH":    {fn: cmdFetch, states: stateSelected, uid: true, seqResponse: true},
		"STORE":    {fn: cmdStore, states: stateSelected, uid: true, seqResponse: true},
		"COPY":     {fn: cmdCopy, states: stateSelected, uid: true},
		"MOVE":     {fn: cmdMove, states: stateSelected, uid: true},
	}
}
