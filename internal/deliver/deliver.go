// Package deliver does local delivery: it resolves a recipient address
// through the directory (accounts, aliases, user+tag, catch-all) into
// mailbox targets, and files finished message bodies into the store.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// Errors from Resolve.
var (
	// ErrNotLocal: the address's domain is not one of ours.
	ErrNotLocal = errors.New("domain is not local")
	// ErrNoSuchUser: a local domain, but no account or alias takes it.
	ErrNoSuchUser = errors.New("no such user")
	// ErrAliasLoop: alias expansion went too deep or in a circle.
	ErrAliasLoop = errors.New("alias expansion too deep")
	// ErrOverQuota: the addressed account has used its storage quota. It
	// is temporary: the owner may make room.
	ErrOverQuota = errors.New("mailbox full: storage quota used")
)

// maxAliasDepth bounds alias-to-alias expansion.
const maxAliasDepth = 10

// maxExpansion bounds how many addresses one recipient may expand to.
const maxExpansion = 1000

// Resolution is where one recipient's copies go.
type Resolution struct {
	// Local are the local mailbox targets, one per distinct account.
	Local []store.Target
	// Remote are addresses outside our domains that aliases forward to.
	Remote []string
	// quota: an account's quota was checked (the result is not cached).
	quota bool
}

// Deliverer resolves recipients and files messages.
//
// Resolutions are cached for resolveTTL (at most resolveCacheMax of
// them), until the directory changes through Users: a change made by
// another process (an admin command removing an account) takes effect
// within that time. An
// address that does not resolve is never cached, so mail for a new
// account is accepted at once, and neither is one whose account has a
// quota (the quota is checked at every RCPT).
type Deliverer struct {
	Users *userdb.DB
	Store *store.Store

	mu    sync.Mutex
	cache map[string]cachedResolution
}

const (
	resolveTTL      = 2 * time.Second
	resolveCacheMax = 10000
)

type cachedResolution struct {
	r       Resolution
	gen     uint64 // Users.Generation when it was looked up
	expires time.Time
}

// Resolve maps a recipient address to targets. In order: an account, an
// alias, the address without its +tag (as account or alias), the domain's
// catch-all alias.
//
// An account addressed directly (with or without a +tag) that has a quota
// and has used it all is ErrOverQuota. Accounts reached through an alias
// are not checked: one full mailbox must not hold back a list's other
// members, and the quota only stops mail sent to its owner.
func (d *Deliverer) Resolve(ctx context.Context, addr string) (Resolution, error) {
	key := strings.ToLower(addr)
	now := time.Now()
	gen := d.Users.Generation() // before the lookup: a write during it is a miss next time
	d.mu.Lock()
	c, ok := d.cache[key]
	d.mu.Unlock()
	if ok && c.gen == gen && now.Before(c.expires) {
		return c.r.clone(), nil
	}
	var r Resolution
	seen := map[string]bool{}
	accounts := map[int64]bool{}
	if err := d.resolve(ctx, addr, 0, seen, accounts, &r); err != nil {
		return Resolution{}, err
	}
	if !r.quota {
		d.mu.Lock()
		if d.cache == nil || len(d.cache) >= resolveCacheMax {
			d.cache = map[string]cachedResolution{}
		}
		d.cache[key] = cachedResolution{r: r.clone(), gen: gen, expires: now.Add(resolveTTL)}
		d.mu.Unlock()
	}
	return r, nil
}

// clone copies r, so a caller may append to what it gets.
func (r Resolution) clone() Resolution {
	return Resolution{Local: slices.Clone(r.Local), Remote: slices.Clone(r.Remote), quota: r.quota}
}

func (d *Deliverer) resolve(ctx context.Context, addr string, depth int, seen map[string]bool, accounts map[int64]bool, r *Resolution) error {
	if depth > maxAliasDepth || len(seen) > maxExpansion {
		return ErrAliasLoop
	}
	local, domain, err := userdb.SplitAddress(addr)
	if err != nil {
		return err
	}
	addr = local + "@" + domain
	key := strings.ToLower(addr)
	if seen[key] {
		return nil
	}
	seen[key] = true
	isLocal, err := d.Users.IsLocalDomain(ctx, domain)
	if err != nil {
		return err
	}
	if !isLocal {
		if depth == 0 {
			return ErrNotLocal
		}
		r.Remote = append(r.Remote, addr)
		return nil
	}
	candidates := []string{addr}
	if i := strings.IndexByte(local, '+'); i > 0 {
		candidates = append(candidates, local[:i]+"@"+domain)
	}
	for _, c := range candidates {
		ok, err := d.tryAddress(ctx, c, depth, seen, accounts, r)
		if err != nil || ok {
			return err
		}
	}
	targets, err := d.Users.Alias(ctx, "@"+domain)
	if err == nil {
		return d.expand(ctx, targets, depth, seen, accounts, r)
	}
	if !errors.Is(err, userdb.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%s: %w", addr, ErrNoSuchUser)
}

func (d *Deliverer) tryAddress(ctx context.Context, addr string, depth int, seen map[string]bool, accounts map[int64]bool, r *Resolution) (bool, error) {
	acc, err := d.Users.Account(ctx, addr)
	if err == nil {
		if depth == 0 && acc.QuotaBytes > 0 {
			r.quota = true
			if err := d.checkQuota(ctx, acc); err != nil {
				return false, err
			}
		}
		if !accounts[acc.ID] {
			accounts[acc.ID] = true
			r.Local = append(r.Local, store.Target{AccountID: acc.ID})
		}
		return true, nil
	}
	if !errors.Is(err, userdb.ErrNotFound) {
		return false, err
	}
	targets, err := d.Users.Alias(ctx, addr)
	if err == nil {
		return true, d.expand(ctx, targets, depth, seen, accounts, r)
	}
	if !errors.Is(err, userdb.ErrNotFound) {
		return false, err
	}
	return false, nil
}

func (d *Deliverer) expand(ctx context.Context, targets []string, depth int, seen map[string]bool, accounts map[int64]bool, r *Resolution) error {
	for _, t := range targets {
		err := d.resolve(ctx, t, depth+1, seen, accounts, r)
		if errors.Is(err, ErrNoSuchUser) {
			// A dangling alias target: the other targets still get
			// their copy.
			continue
		}
		if err != nil {
			return err
		}
	}
	if len(r.Local) == 0 && len(r.Remote) == 0 && depth == 0 {
		return ErrNoSuchUser
	}
	return nil
}

// checkQuota returns ErrOverQuota when acc has used its whole quota.
func (d *Deliverer) checkQuota(ctx context.Context, acc userdb.Account) error {
	a, err := d.Store.Account(ctx, acc.ID)
	if err != nil {
		return err
	}
	defer a.Release()
	used, _, err := a.Usage(ctx)
	if err != nil {
		return err
	}
	if used >= acc.QuotaBytes {
		return fmt.Errorf("%s: %w (%d of %d bytes)", acc.Address, ErrOverQuota, used, acc.QuotaBytes)
	}
	return nil
}

// Deliver files the finished body into the targets; it returns when every
// copy is durable.
func (d *Deliverer) Deliver(ctx context.Context, body *blob.Temp, targets []store.Target) error {
	return d.Store.Deliver(ctx, body, targets)
}
