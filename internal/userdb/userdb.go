// Package userdb owns the mail system's directory: local domains, accounts
// with their credentials, and aliases. It lives in global.db in the data
// directory.
//
// Passwords are stored as argon2id hashes (PHC string format), except those
// of imported accounts, which keep the hash they came with, in its scheme
// ("{SHA512-CRYPT}$6$...", schemes.go), until their first successful login
// replaces it by argon2id (Rehash). The APOP
// shared secret, which RFC 1939 §7 requires the server to know in the clear,
// is kept in its own column, is optional per account, and is never the login
// password. Every read goes to the database, so changes made by the admin
// commands in another process are seen at once by a running server.
package userdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/jodmai/jodmai/internal/sqlite"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound is returned when a domain, account or alias does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when creating something that already exists.
	ErrExists = errors.New("already exists")
	// ErrBadCredentials is returned by Authenticate for a wrong user or
	// password; it never says which.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrNoAPOP is returned when an account has no APOP secret.
	ErrNoAPOP = errors.New("no APOP secret set")
	// ErrInvalid is returned for malformed addresses and names.
	ErrInvalid = errors.New("invalid")
)

// Account is one mail account: a login and a set of mailboxes.
type Account struct {
	// ID is stable for the account's life and never reused.
	ID int64
	// Address is the login and primary address, local@domain.
	Address string
	// QuotaBytes limits the account's storage; 0 is unlimited.
	QuotaBytes int64
	// HasAPOP reports whether an APOP secret is set.
	HasAPOP bool
	// Created is when the account was made.
	Created time.Time
	// Admin marks an administrator: the web console's admin pages are
	// open to it (SetAdmin, "jodmai user admin", user import).
	Admin bool
}

// Alias maps an address (or "@domain" for a catch-all) to targets.
type Alias struct {
	Address string
	Targets []string
}

var migrations = []string{
	`CREATE TABLE domains (
		name TEXT PRIMARY KEY,
		created INTEGER NOT NULL
	);
	CREATE TABLE accounts (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		address TEXT NOT NULL UNIQUE COLLATE NOCASE,
		domain TEXT NOT NULL REFERENCES domains(name),
		password_hash TEXT NOT NULL,
		apop_secret TEXT NOT NULL DEFAULT '',
		quota_bytes INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL
	);
	CREATE TABLE aliases (
		address TEXT PRIMARY KEY COLLATE NOCASE,
		domain TEXT NOT NULL REFERENCES domains(name),
		targets TEXT NOT NULL
	);`,
	// 2: the admin flag (user import), and where an imported password
	// hash came from: ImportFingerprint of the hash as imported, kept
	// when a login replaces the hash by argon2id, so that importing the
	// same file again leaves the password alone ("" for passwords set
	// here).
	`ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE accounts ADD COLUMN password_source TEXT NOT NULL DEFAULT '';`,
	// 3: app passwords (apppass.go), and indexes for the web console's
	// per-domain counts (list.go). lookup is the app password's first
	// group, in the clear, so a login verifies one hash, not all of an
	// account's; the rest of the password is only in hash (argon2id).
	`CREATE TABLE app_passwords (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		lookup TEXT NOT NULL,
		hash TEXT NOT NULL,
		created INTEGER NOT NULL
	);
	CREATE INDEX app_passwords_account ON app_passwords(account_id, lookup);
	CREATE INDEX accounts_domain ON accounts(domain);
	CREATE INDEX aliases_domain ON aliases(domain);`,
	// 4: vacation auto-replies (vacation.go): an account's settings, and
	// the senders it has answered lately (one reply per sender per
	// VacationPeriod), bounded per account.
	`CREATE TABLE vacations (
		account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
		enabled INTEGER NOT NULL DEFAULT 0,
		subject TEXT NOT NULL DEFAULT '',
		body TEXT NOT NULL DEFAULT '',
		start INTEGER NOT NULL DEFAULT 0,
		end INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE vacation_replies (
		account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		sender TEXT NOT NULL COLLATE NOCASE,
		expires INTEGER NOT NULL,
		PRIMARY KEY(account_id, sender)
	);
	CREATE INDEX vacation_replies_expires ON vacation_replies(account_id, expires);`,
	// 5: forwarding (forward.go): the addresses an account's mail is
	// also (or only) sent to, comma-separated.
	`CREATE TABLE forwards (
		account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
		targets TEXT NOT NULL,
		keep_copy INTEGER NOT NULL DEFAULT 1
	);`,
}

// DB is the directory database.
type DB struct {
	db *sqlite.DB
	// dummyHash is verified against when a user does not exist, so a wrong
	// user costs the same time as a wrong password.
	dummyHash string
	// Statements of the delivery path (every RCPT), prepared once.
	stDomain, stAccount *sql.Stmt
	// gen counts writes through this handle (see Generation).
	gen atomic.Uint64
	// cheap: hash with test parameters (CheapHashes, cheaphash.go).
	cheap bool
}

// Generation changes whenever this handle writes to the directory, so a
// cache of lookups made through it can tell that it may be stale. Writes
// by other processes (the admin commands) do not change it.
func (d *DB) Generation() uint64 { return d.gen.Load() }

// wrote marks a write (done or attempted) for Generation.
func (d *DB) wrote() { d.gen.Add(1) }

// Open opens (creating if needed) global.db in dataDir.
func Open(ctx context.Context, dataDir string) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, "global.db"), migrations)
	if err != nil {
		return nil, err
	}
	h, err := HashPassword("jodmai-dummy-password-for-timing")
	if err != nil {
		db.Close()
		return nil, err
	}
	d := &DB{db: db, dummyHash: h}
	if d.stDomain, err = db.R.PrepareContext(ctx, `SELECT count(*) FROM domains WHERE name=?`); err == nil {
		d.stAccount, err = db.R.PrepareContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE address=?`)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("prepare statements: %w", err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error {
	for _, st := range []*sql.Stmt{d.stDomain, d.stAccount} {
		if st != nil {
			st.Close()
		}
	}
	return d.db.Close()
}

// --- addresses ---

// SplitAddress splits local@domain, lowercasing the domain. It rejects
// addresses without exactly one @, empty parts, invalid UTF-8, whitespace
// and control characters.
func SplitAddress(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", fmt.Errorf("%w address %q: want local@domain", ErrInvalid, addr)
	}
	if !utf8.ValidString(addr) {
		// Checked before lowercasing, which would turn bad bytes into U+FFFD.
		return "", "", fmt.Errorf("%w address %q: not UTF-8", ErrInvalid, addr)
	}
	local, domain = addr[:i], strings.ToLower(addr[i+1:])
	if err := checkDomain(domain); err != nil {
		return "", "", err
	}
	if len(local) > 64 {
		return "", "", fmt.Errorf("%w address %q: local part longer than 64", ErrInvalid, addr)
	}
	for _, r := range local {
		// '@' is only valid in a quoted local part (RFC 5321 §4.1.2), and
		// quotes are refused: "a@b@example.org" is garbage, not user "a@b".
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == '\\' || r == ',' || r == '@' || unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", "", fmt.Errorf("%w address %q: character %q not allowed in local part", ErrInvalid, addr, r)
		}
	}
	return local, domain, nil
}

// NormalizeAddress returns local@domain with the domain lowercased.
func NormalizeAddress(addr string) (string, error) {
	l, d, err := SplitAddress(addr)
	if err != nil {
		return "", err
	}
	return l + "@" + d, nil
}

func checkDomain(d string) error {
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") || !utf8.ValidString(d) {
		return fmt.Errorf("%w domain %q", ErrInvalid, d)
	}
	for _, label := range strings.Split(d, ".") {
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%w domain %q: label starts or ends with '-'", ErrInvalid, d)
		}
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r > 0x7f && !unicode.IsControl(r) && !unicode.IsSpace(r)) {
			return fmt.Errorf("%w domain %q: character %q", ErrInvalid, d, r)
		}
	}
	return nil
}

// --- domains ---

// AddDomain adds a local domain.
func (d *DB) AddDomain(ctx context.Context, name string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	if err := checkDomain(name); err != nil {
		return err
	}
	defer d.wrote()
	_, err := d.db.W.ExecContext(ctx, `INSERT INTO domains(name, created) VALUES(?, ?)`, name, time.Now().Unix())
	if err != nil {
		if isUnique(err) {
			return fmt.Errorf("domain %s: %w", name, ErrExists)
		}
		return fmt.Errorf("add domain %s: %w", name, err)
	}
	return nil
}

// DelDomain removes a domain. It refuses while accounts or aliases use it.
func (d *DB) DelDomain(ctx context.Context, name string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	defer d.wrote()
	return d.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts WHERE domain=?) + (SELECT count(*) FROM aliases WHERE domain=?)`, name, name).Scan(&n); err != nil {
			return fmt.Errorf("count users of domain %s: %w", name, err)
		}
		if n > 0 {
			return fmt.Errorf("domain %s still has %d accounts or aliases: delete them first", name, n)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE name=?`, name)
		if err != nil {
			return fmt.Errorf("delete domain %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", name, ErrNotFound)
		}
		return nil
	})
}

// Domains lists the local domains.
func (d *DB) Domains(ctx context.Context) ([]string, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT name FROM domains ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// IsLocalDomain reports whether domain is one of ours.
func (d *DB) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	var n int
	err := d.stDomain.QueryRowContext(ctx, strings.ToLower(domain)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up domain: %w", err)
	}
	return n > 0, nil
}

// --- accounts ---

// AddAccount creates an account with the given password. The domain must
// be local.
func (d *DB) AddAccount(ctx context.Context, address, password string) (Account, error) {
	local, domain, err := SplitAddress(address)
	if err != nil {
		return Account{}, err
	}
	address = local + "@" + domain
	if err := CheckPassword(password); err != nil {
		return Account{}, err
	}
	hash, err := d.hashPassword(password)
	if err != nil {
		return Account{}, err
	}
	var acc Account
	defer d.wrote()
	err = d.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE name=?`, domain).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("domain %s is not a local domain (add it with 'jodmai domain add %s'): %w", domain, domain, ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM aliases WHERE address=?`, address).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%s is an alias: %w", address, ErrExists)
		}
		now := time.Now()
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts(address, domain, password_hash, created) VALUES(?, ?, ?, ?)`, address, domain, hash, now.Unix())
		if err != nil {
			if isUnique(err) {
				return fmt.Errorf("account %s: %w", address, ErrExists)
			}
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		acc = Account{ID: id, Address: address, Created: time.Unix(now.Unix(), 0)}
		return nil
	})
	if err != nil {
		return Account{}, fmt.Errorf("add account %s: %w", address, err)
	}
	return acc, nil
}

// SetPassword changes an account's password.
func (d *DB) SetPassword(ctx context.Context, address, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := d.hashPassword(password)
	if err != nil {
		return err
	}
	return d.update(ctx, address, `UPDATE accounts SET password_hash=?, password_source='' WHERE address=?`, hash)
}

// SetPasswordHash stores hash, in a scheme CheckHash accepts (argon2id
// with any parameters included), as an account's password hash: for
// importers and for tests that need a cheap hash.
func (d *DB) SetPasswordHash(ctx context.Context, address, hash string) error {
	stored, err := CheckHash(hash)
	if err != nil {
		return err
	}
	return d.update(ctx, address, `UPDATE accounts SET password_hash=?, password_source='' WHERE address=?`, stored)
}

// HighestAccountID is the highest account id ever issued, deleted
// accounts included (ids are never reused), or 0.
func (d *DB) HighestAccountID(ctx context.Context) (int64, error) {
	var seq int64
	err := d.db.R.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name='accounts'), 0)`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("highest account id: %w", err)
	}
	return seq, nil
}

// Rehash replaces an account's password hash old, in a foreign scheme or
// with old parameters, by our argon2id hash of password, which the caller
// has just verified against old. It changes nothing if the hash is no
// longer old (the password was changed meanwhile), and keeps the record
// of where an imported hash came from (password_source). It returns the
// hash now stored.
func (d *DB) Rehash(ctx context.Context, id int64, old, password string) (string, error) {
	if d.keepsHash(old) {
		return old, nil
	}
	hash, err := d.hashPassword(password)
	if err != nil {
		return "", err
	}
	defer d.wrote()
	res, err := d.db.W.ExecContext(ctx, `UPDATE accounts SET password_hash=? WHERE id=? AND password_hash=?`, hash, id, old)
	if err != nil {
		return "", fmt.Errorf("rehash password of account %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return old, nil
	}
	return hash, nil
}

// SetAPOPSecret sets (or with "" clears) the APOP shared secret.
func (d *DB) SetAPOPSecret(ctx context.Context, address, secret string) error {
	if secret != "" {
		if err := CheckPassword(secret); err != nil {
			return err
		}
	}
	return d.update(ctx, address, `UPDATE accounts SET apop_secret=? WHERE address=?`, secret)
}

// SetQuota sets the account's storage quota in bytes (0: unlimited).
func (d *DB) SetQuota(ctx context.Context, address string, bytes int64) error {
	if bytes < 0 {
		return fmt.Errorf("%w quota %d", ErrInvalid, bytes)
	}
	return d.update(ctx, address, `UPDATE accounts SET quota_bytes=? WHERE address=?`, bytes)
}

func (d *DB) update(ctx context.Context, address, query string, v any) error {
	address, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	defer d.wrote()
	res, err := d.db.W.ExecContext(ctx, query, v, address)
	if err != nil {
		return fmt.Errorf("update account %s: %w", address, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("account %s: %w", address, ErrNotFound)
	}
	return nil
}

// DelAccount removes an account from the directory and returns it; the
// caller removes its mail (store.RemoveAccount).
func (d *DB) DelAccount(ctx context.Context, address string) (Account, error) {
	acc, err := d.Account(ctx, address)
	if err != nil {
		return Account{}, err
	}
	defer d.wrote()
	if _, err := d.db.W.ExecContext(ctx, `DELETE FROM accounts WHERE id=?`, acc.ID); err != nil {
		return Account{}, fmt.Errorf("delete account %s: %w", acc.Address, err)
	}
	return acc, nil
}

const accountCols = `id, address, quota_bytes, apop_secret != '', created, admin`

// scanAccount scans accountCols and then extra.
func scanAccount(sc interface{ Scan(...any) error }, extra ...any) (Account, error) {
	var a Account
	var created int64
	if err := sc.Scan(append([]any{&a.ID, &a.Address, &a.QuotaBytes, &a.HasAPOP, &created, &a.Admin}, extra...)...); err != nil {
		return Account{}, err
	}
	a.Created = time.Unix(created, 0)
	return a, nil
}

// Account looks an account up by address (case-insensitively).
func (d *DB) Account(ctx context.Context, address string) (Account, error) {
	address, err := NormalizeAddress(address)
	if err != nil {
		return Account{}, err
	}
	a, err := scanAccount(d.stAccount.QueryRowContext(ctx, address))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("account %s: %w", address, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("look up account %s: %w", address, err)
	}
	return a, nil
}

// AccountByID looks an account up by id.
func (d *DB) AccountByID(ctx context.Context, id int64) (Account, error) {
	a, err := scanAccount(d.db.R.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("account %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("look up account %d: %w", id, err)
	}
	return a, nil
}

// Accounts lists all accounts.
func (d *DB) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY domain, address`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Authenticate checks a login and password. A wrong user and a wrong
// password both give ErrBadCredentials after the same amount of work.
func (d *DB) Authenticate(ctx context.Context, address, password string) (Account, error) {
	a, hash, err := d.Credentials(ctx, address)
	if errors.Is(err, ErrBadCredentials) {
		VerifyPassword(d.dummyHash, password)
		return Account{}, ErrBadCredentials
	}
	if err != nil {
		return Account{}, err
	}
	if !VerifyPassword(hash, password) {
		return Account{}, ErrBadCredentials
	}
	if NeedsRehash(hash) {
		if _, err := d.Rehash(ctx, a.ID, hash, password); err != nil {
			return Account{}, err
		}
	}
	return a, nil
}

// Credentials returns an account and its password hash, for callers that
// verify passwords themselves (the authenticator's cache). An unknown or
// malformed address gives ErrBadCredentials.
func (d *DB) Credentials(ctx context.Context, address string) (Account, string, error) {
	norm, err := NormalizeAddress(address)
	if err != nil {
		return Account{}, "", ErrBadCredentials
	}
	var hash string
	a, err := scanAccount(d.db.R.QueryRowContext(ctx, `SELECT `+accountCols+`, password_hash FROM accounts WHERE address=?`, norm), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, "", ErrBadCredentials
	}
	if err != nil {
		return Account{}, "", fmt.Errorf("look up account: %w", err)
	}
	return a, hash, nil
}

// DummyHash is a valid hash no password matches in practice; verifying
// against it costs what a real check costs.
func (d *DB) DummyHash() string { return d.dummyHash }

// APOPSecret returns the account's APOP shared secret. For an unknown user
// it returns ErrBadCredentials, for an account without a secret ErrNoAPOP.
func (d *DB) APOPSecret(ctx context.Context, address string) (Account, string, error) {
	norm, err := NormalizeAddress(address)
	if err != nil {
		return Account{}, "", ErrBadCredentials
	}
	var secret string
	a, err := scanAccount(d.db.R.QueryRowContext(ctx, `SELECT `+accountCols+`, apop_secret FROM accounts WHERE address=?`, norm), &secret)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, "", ErrBadCredentials
	}
	if err != nil {
		return Account{}, "", fmt.Errorf("look up account: %w", err)
	}
	if secret == "" {
		return Account{}, "", ErrNoAPOP
	}
	return a, secret, nil
}

// --- aliases ---

// AddAlias creates an alias. address may be "@domain" for a catch-all of a
// local domain. Targets are addresses, local or remote.
func (d *DB) AddAlias(ctx context.Context, address string, targets []string) error {
	var domain string
	if strings.HasPrefix(address, "@") {
		domain = strings.ToLower(address[1:])
		if err := checkDomain(domain); err != nil {
			return err
		}
		address = "@" + domain
	} else {
		l, dom, err := SplitAddress(address)
		if err != nil {
			return err
		}
		address, domain = l+"@"+dom, dom
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w alias %s: no targets", ErrInvalid, address)
	}
	var norm []string
	for _, t := range targets {
		n, err := NormalizeAddress(strings.TrimSpace(t))
		if err != nil {
			return fmt.Errorf("alias target: %w", err)
		}
		if strings.EqualFold(n, address) {
			return fmt.Errorf("%w alias %s points at itself", ErrInvalid, address)
		}
		norm = append(norm, n)
	}
	defer d.wrote()
	return d.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE name=?`, domain).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("domain %s is not a local domain: %w", domain, ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE address=?`, address).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%s is an account: %w", address, ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO aliases(address, domain, targets) VALUES(?, ?, ?)`, address, domain, strings.Join(norm, "\n"))
		if isUnique(err) {
			return fmt.Errorf("alias %s: %w", address, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("add alias %s: %w", address, err)
		}
		return nil
	})
}

// DelAlias removes an alias.
func (d *DB) DelAlias(ctx context.Context, address string) error {
	defer d.wrote()
	res, err := d.db.W.ExecContext(ctx, `DELETE FROM aliases WHERE address=?`, lowerDomain(address))
	if err != nil {
		return fmt.Errorf("delete alias %s: %w", address, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alias %s: %w", address, ErrNotFound)
	}
	return nil
}

func lowerDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr
	}
	return addr[:i] + strings.ToLower(addr[i:])
}

// Alias returns the targets of an alias (address or "@domain").
func (d *DB) Alias(ctx context.Context, address string) ([]string, error) {
	var t string
	err := d.db.R.QueryRowContext(ctx, `SELECT targets FROM aliases WHERE address=?`, lowerDomain(address)).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("alias %s: %w", address, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("look up alias %s: %w", address, err)
	}
	return strings.Split(t, "\n"), nil
}

// Aliases lists all aliases.
func (d *DB) Aliases(ctx context.Context) ([]Alias, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT address, targets FROM aliases ORDER BY domain, address`)
	if err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	defer rows.Close()
	var out []Alias
	for rows.Next() {
		var a, t string
		if err := rows.Scan(&a, &t); err != nil {
			return nil, err
		}
		out = append(out, Alias{Address: a, Targets: strings.Split(t, "\n")})
	}
	return out, rows.Err()
}

// AliasesTargeting lists the aliases (not catch-alls) that have address
// among their targets: the addresses an account may also send as.
func (d *DB) AliasesTargeting(ctx context.Context, address string) ([]string, error) {
	all, err := d.Aliases(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range all {
		if strings.HasPrefix(a.Address, "@") {
			continue
		}
		for _, t := range a.Targets {
			if strings.EqualFold(t, address) {
				out = append(out, a.Address)
				break
			}
		}
	}
	return out, nil
}

// --- passwords ---

// argon2id parameters: RFC 9106 second recommended option scaled to the
// OWASP minimum for a server that hashes on every login (19 MiB, t=2).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// CheckPassword enforces the minimum password policy.
func CheckPassword(p string) error {
	if len(p) < 8 {
		return fmt.Errorf("%w password: at least 8 characters", ErrInvalid)
	}
	if len(p) > 1024 {
		return fmt.Errorf("%w password: at most 1024 bytes", ErrInvalid)
	}
	if strings.ContainsAny(p, "\x00\r\n") {
		return fmt.Errorf("%w password: NUL, CR and LF are not allowed", ErrInvalid)
	}
	return nil
}

// HashPassword returns an argon2id PHC string for p.
func HashPassword(p string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(p), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// GeneratePassword returns a random password of 20 characters from an
// unambiguous alphabet (about 110 bits).
func GeneratePassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	return randomFrom(alphabet, 20)
}

func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		var x [1]byte
		for {
			rand.Read(x[:])
			// Reject to avoid modulo bias.
			if int(x[0]) < 256-256%len(alphabet) {
				break
			}
		}
		b[i] = alphabet[int(x[0])%len(alphabet)]
	}
	return string(b)
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
