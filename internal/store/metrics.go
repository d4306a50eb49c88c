package store

// Stats is a snapshot of the store for monitoring.
type Stats struct {
	// OpenAccounts is the number of accounts open now.
	OpenAccounts int
	// PendingDeliveries counts deliveries acknowledged (durable in the
	// delivery journal) but not yet applied to their account's index:
	// the journal's lag. Readers settle them first, so a client never
	// misses one; a growing number means the committers fall behind.
	PendingDeliveries int64
}

// Stats returns a snapshot of the store's counters. It takes the store's
// lock briefly and touches no disk, so a metrics scrape may call it.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{OpenAccounts: len(s.accts)}
	for _, a := range s.accts {
		st.PendingDeliveries += a.pending.Load()
	}
	return st
}
