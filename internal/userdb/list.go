package userdb

import (
	"context"
	"fmt"
	"strings"
)

// SetAdmin sets or clears an account's admin flag.
func (d *DB) SetAdmin(ctx context.Context, address string, admin bool) error {
	return d.update(ctx, address, `UPDATE accounts SET admin=? WHERE address=?`, admin)
}

// AccountPage is one page of a listing of accounts.
type AccountPage struct {
	// Accounts on this page, by address.
	Accounts []Account
	// Total is how many accounts match the search, on every page.
	Total int
}

// likeEscape escapes s for a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// SearchAccounts returns up to limit accounts, skipping offset, whose
// address contains search (case-insensitively; "" matches all), in
// address order, with the number of all matches. An optional domain
// limits it to one domain. It reads one page, so it stays fast with many
// accounts.
func (d *DB) SearchAccounts(ctx context.Context, search, domain string, offset, limit int) (AccountPage, error) {
	where, args := "1", []any{}
	if search != "" {
		where += ` AND address LIKE ? ESCAPE '\'`
		args = append(args, "%"+likeEscape(search)+"%")
	}
	if domain != "" {
		where += ` AND domain=?`
		args = append(args, strings.ToLower(domain))
	}
	var p AccountPage
	if err := d.db.R.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE `+where, args...).Scan(&p.Total); err != nil {
		return AccountPage{}, fmt.Errorf("count accounts: %w", err)
	}
	rows, err := d.db.R.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE `+where+` ORDER BY address LIMIT ? OFFSET ?`,
		append(args, max(limit, 0), max(offset, 0))...)
	if err != nil {
		return AccountPage{}, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return AccountPage{}, err
		}
		p.Accounts = append(p.Accounts, a)
	}
	return p, rows.Err()
}

// DomainInfo is a local domain with how much uses it.
type DomainInfo struct {
	// Name is the domain, lowercase.
	Name string
	// Accounts and Aliases count the domain's accounts and aliases
	// (a catch-all is an alias).
	Accounts, Aliases int
}

// DomainInfos lists the local domains with their counts.
func (d *DB) DomainInfos(ctx context.Context) ([]DomainInfo, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT name,
		(SELECT count(*) FROM accounts WHERE domain=name),
		(SELECT count(*) FROM aliases WHERE domain=name)
		FROM domains ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	var out []DomainInfo
	for rows.Next() {
		var di DomainInfo
		if err := rows.Scan(&di.Name, &di.Accounts, &di.Aliases); err != nil {
			return nil, err
		}
		out = append(out, di)
	}
	return out, rows.Err()
}
