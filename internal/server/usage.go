package server

import (
	"context"
	"errors"
	"sync"

	"github.com/jodmai/jodmai/internal/userdb"
)

// accountDomains maps account ids to their domains for the store's usage
// table (Store.SetUsageGroup), which asks once per account it learns of:
// one listing of the directory answers a whole first scrape, instead of a
// lookup per account. An account the listing lacks (added since, perhaps
// by another process) is looked up alone.
type accountDomains struct {
	users *userdb.DB

	mu     sync.Mutex
	gen    uint64
	listed bool
	domain map[int64]string
}

// lookup returns account id's domain; "" for an account no longer in the
// directory.
func (a *accountDomains) lookup(ctx context.Context, id int64) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen := a.users.Generation(); !a.listed || gen != a.gen {
		accts, err := a.users.Accounts(ctx)
		if err != nil {
			return "", err
		}
		a.domain = make(map[int64]string, len(accts))
		for _, acc := range accts {
			if _, d, err := userdb.SplitAddress(acc.Address); err == nil {
				a.domain[acc.ID] = d
			}
		}
		a.gen, a.listed = gen, true
	}
	if d, ok := a.domain[id]; ok {
		return d, nil
	}
	acc, err := a.users.AccountByID(ctx, id)
	if errors.Is(err, userdb.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	_, d, err := userdb.SplitAddress(acc.Address)
	if err == nil {
		a.domain[id] = d
	}
	return d, err
}
