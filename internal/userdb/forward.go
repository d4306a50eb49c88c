package userdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// MaxForwards bounds an account's forwarding addresses.
const MaxForwards = 5

// Forward is an account's forwarding: its mail also goes to To, and
// stays in its own mailbox only with KeepCopy.
type Forward struct {
	// To are the addresses mail is forwarded to; none: no forwarding.
	To []string
	// KeepCopy files a copy in the account's INBOX too.
	KeepCopy bool
}

// Forward returns the forwarding of account accountID: no addresses when
// none was set.
func (d *DB) Forward(ctx context.Context, accountID int64) (Forward, error) {
	var targets string
	var f Forward
	err := d.db.R.QueryRowContext(ctx, `SELECT targets, keep_copy FROM forwards WHERE account_id=?`, accountID).Scan(&targets, &f.KeepCopy)
	if errors.Is(err, sql.ErrNoRows) {
		return Forward{KeepCopy: true}, nil
	}
	if err != nil {
		return Forward{}, fmt.Errorf("read forwarding of account %d: %w", accountID, err)
	}
	if targets != "" {
		f.To = strings.Split(targets, ",")
	}
	return f, nil
}

// Forwards returns the ids of the accounts that forward their mail.
func (d *DB) Forwards(ctx context.Context) (map[int64]bool, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT account_id FROM forwards WHERE targets != ''`)
	if err != nil {
		return nil, fmt.Errorf("list forwards: %w", err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// SetForward replaces the forwarding of account accountID. Addresses are
// normalized and deduplicated; at most MaxForwards, and not the
// account's own address.
func (d *DB) SetForward(ctx context.Context, accountID int64, f Forward) error {
	acc, err := d.AccountByID(ctx, accountID)
	if err != nil {
		return err
	}
	var to []string
	seen := map[string]bool{}
	for _, a := range f.To {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		n, err := NormalizeAddress(a)
		if err != nil || strings.ContainsAny(n, ", \t\r\n<>\"") {
			return fmt.Errorf("%w forwarding address %q", ErrInvalid, a)
		}
		if strings.EqualFold(n, acc.Address) {
			return fmt.Errorf("%w forwarding address %q: the account itself", ErrInvalid, a)
		}
		if !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			to = append(to, n)
		}
	}
	if len(to) > MaxForwards {
		return fmt.Errorf("%w forwarding: at most %d addresses", ErrInvalid, MaxForwards)
	}
	defer d.wrote()
	_, err = d.db.W.ExecContext(ctx, `INSERT INTO forwards(account_id, targets, keep_copy) VALUES(?, ?, ?)
		ON CONFLICT(account_id) DO UPDATE SET targets=excluded.targets, keep_copy=excluded.keep_copy`,
		accountID, strings.Join(to, ","), f.KeepCopy)
	if err != nil {
		return fmt.Errorf("set forwarding of account %d: %w", accountID, err)
	}
	return nil
}
