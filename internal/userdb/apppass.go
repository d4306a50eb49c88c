package userdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// App passwords are per-device passwords an account owner makes in the web
// console and can revoke one by one. They log in to SMTP, POP3 and IMAP
// like the account's password, never to the web console itself.
//
// The server generates them (the owner never chooses one), so they all
// have one form, five groups of four characters of the GeneratePassword
// alphabet separated by '-', about 117 bits. The first group is stored in
// the clear as a lookup key: a login with an app password verifies the
// one hash of the one app password it can be, not every app password of
// the account. The whole password is stored only as an argon2id hash.

const (
	appGroups    = 5
	appGroupLen  = 4
	appAlphabet  = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	maxAppName   = 64
	maxAppPasswd = 50 // per account
)

// AppPassword is one app password of an account; the password itself is
// only ever returned by AddAppPassword.
type AppPassword struct {
	// ID identifies the app password (for revoking it).
	ID int64
	// Name is the owner's label for it ("phone", "laptop").
	Name string
	// Created is when it was made.
	Created time.Time
}

// ErrTooMany is returned when an account already has the most app
// passwords it may have.
var ErrTooMany = errors.New("too many app passwords")

// appLookup returns the lookup key of a password in the app-password form,
// and false for any other password.
func appLookup(p string) (string, bool) {
	if len(p) != appGroups*appGroupLen+appGroups-1 {
		return "", false
	}
	for i := 0; i < len(p); i++ {
		if i%(appGroupLen+1) == appGroupLen {
			if p[i] != '-' {
				return "", false
			}
		} else if strings.IndexByte(appAlphabet, p[i]) < 0 {
			return "", false
		}
	}
	return p[:appGroupLen], true
}

func generateAppPassword() string {
	var b strings.Builder
	for i := range appGroups {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(randomFrom(appAlphabet, appGroupLen))
	}
	return b.String()
}

// AddAppPassword makes a new app password named name for account id and
// returns it: this is the only time it is available in the clear.
func (d *DB) AddAppPassword(ctx context.Context, accountID int64, name string) (string, AppPassword, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxAppName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", AppPassword{}, fmt.Errorf("%w app password name: 1 to %d printable characters", ErrInvalid, maxAppName)
	}
	password := generateAppPassword()
	lookup, _ := appLookup(password)
	hash, err := d.hashPassword(password)
	if err != nil {
		return "", AppPassword{}, err
	}
	ap := AppPassword{Name: name, Created: time.Unix(time.Now().Unix(), 0)}
	defer d.wrote()
	err = d.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM app_passwords WHERE account_id=?`, accountID).Scan(&n); err != nil {
			return err
		}
		if n >= maxAppPasswd {
			return fmt.Errorf("%w: at most %d per account", ErrTooMany, maxAppPasswd)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO app_passwords(account_id, name, lookup, hash, created) VALUES(?, ?, ?, ?, ?)`,
			accountID, name, lookup, hash, ap.Created.Unix())
		if err != nil {
			if strings.Contains(err.Error(), "FOREIGN KEY") {
				return fmt.Errorf("account %d: %w", accountID, ErrNotFound)
			}
			return err
		}
		ap.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return "", AppPassword{}, fmt.Errorf("add app password: %w", err)
	}
	return password, ap, nil
}

// AppPasswords lists an account's app passwords, oldest first.
func (d *DB) AppPasswords(ctx context.Context, accountID int64) ([]AppPassword, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT id, name, created FROM app_passwords WHERE account_id=? ORDER BY id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list app passwords: %w", err)
	}
	defer rows.Close()
	var out []AppPassword
	for rows.Next() {
		var ap AppPassword
		var created int64
		if err := rows.Scan(&ap.ID, &ap.Name, &created); err != nil {
			return nil, err
		}
		ap.Created = time.Unix(created, 0)
		out = append(out, ap)
	}
	return out, rows.Err()
}

// DelAppPassword revokes app password id of account accountID. The next
// login with it fails: logins read the app passwords afresh every time.
func (d *DB) DelAppPassword(ctx context.Context, accountID, id int64) error {
	defer d.wrote()
	res, err := d.db.W.ExecContext(ctx, `DELETE FROM app_passwords WHERE id=? AND account_id=?`, id, accountID)
	if err != nil {
		return fmt.Errorf("revoke app password: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("app password %d: %w", id, ErrNotFound)
	}
	return nil
}

// AppPasswordHashes returns the hashes of the app passwords of account
// accountID that password could be (by its lookup key): none for a
// password not in the app-password form. The caller verifies them.
func (d *DB) AppPasswordHashes(ctx context.Context, accountID int64, password string) ([]string, error) {
	lookup, ok := appLookup(password)
	if !ok {
		return nil, nil
	}
	rows, err := d.db.R.QueryContext(ctx, `SELECT hash FROM app_passwords WHERE account_id=? AND lookup=?`, accountID, lookup)
	if err != nil {
		return nil, fmt.Errorf("look up app password: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
