package userdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// ImportRecord is one account of a bulk import (jodmai user import). Nil
// and empty fields are left as they are on an existing account.
type ImportRecord struct {
	// Line is the record's line in its file, for the report.
	Line int
	// Address is the account's address.
	Address string
	// Password is a plain-text password, hashed here with argon2id. Only
	// one of Password and Hash is set.
	Password string
	// Hash is a password hash in a scheme VerifyPassword knows, stored as
	// it is (CheckHash) and replaced by argon2id at the first login. A
	// plain-text scheme ("{PLAIN}secret") is taken as Password.
	Hash string
	// QuotaBytes is the storage quota (0: unlimited).
	QuotaBytes *int64
	// APOPSecret is the APOP shared secret.
	APOPSecret *string
	// Admin marks an administrator.
	Admin *bool
	// Aliases are addresses to deliver to this account as well: each is
	// created as an alias with this account as target, or gets it added.
	Aliases []string
}

// ImportStatus is what importing a record did.
type ImportStatus int

// The outcomes of a record.
const (
	ImportFailed ImportStatus = iota
	ImportCreated
	ImportUpdated
	ImportUnchanged
)

func (s ImportStatus) String() string {
	return [...]string{"error", "created", "updated", "unchanged"}[s]
}

// ImportResult is the outcome of one record.
type ImportResult struct {
	Line    int
	Address string
	Status  ImportStatus
	// Changed names what an update changed ("password", "quota",
	// "apop secret", "admin", "alias x@y").
	Changed []string
	// Err is why the record failed (Status ImportFailed).
	Err error
}

// ImportOptions tune ImportBatch.
type ImportOptions struct {
	// CreateDomains creates the domains of records that are not local
	// yet; without it such records fail.
	CreateDomains bool
	// Workers is how many plain-text passwords are hashed (or checked)
	// at once; 0 means GOMAXPROCS. Each argon2id takes 19 MiB.
	Workers int
}

// ImportFingerprint identifies a password hash as imported for an
// address: kept after the login path replaced the hash by argon2id, it
// lets a second import of the same file see that the password did not
// change. It is a SHA-256 of the address and the hash, so it reveals no
// more than the hash (which it never lets anyone reconstruct).
func ImportFingerprint(address, hash string) string {
	s := sha256.Sum256([]byte("jodmai import\x00" + strings.ToLower(address) + "\x00" + hash))
	return hex.EncodeToString(s[:16])
}

// importRow is a record being imported.
type importRow struct {
	rec     ImportRecord
	res     ImportResult
	domain  string
	hash    string // the hash to store ("": keep the stored one)
	source  string // its password_source
	aliases []string
}

// ImportBatch imports records in one transaction, so that thousands of
// accounts take seconds: records are validated first, plain-text passwords
// hashed in parallel (or checked against the stored hash, so that a second
// run changes nothing), then every record is applied in its own savepoint,
// so one failing record fails alone. It returns a result per record, in
// order; the error is for a failure of the whole batch.
func (d *DB) ImportBatch(ctx context.Context, recs []ImportRecord, opt ImportOptions) ([]ImportResult, error) {
	rows := make([]*importRow, len(recs))
	for i, r := range recs {
		row := &importRow{rec: r, res: ImportResult{Line: r.Line, Address: r.Address}}
		row.res.Err = row.validate()
		rows[i] = row
	}
	if err := d.hashPlain(ctx, rows, opt.Workers); err != nil {
		return nil, err
	}
	defer d.wrote()
	domains := map[string]bool{}
	err := d.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, row := range rows {
			if row.res.Err != nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT rec`); err != nil {
				return err
			}
			row.res.Status, row.res.Changed, row.res.Err = d.importRow(ctx, tx, row, domains, opt)
			undo := `RELEASE rec`
			if row.res.Err != nil {
				undo = `ROLLBACK TO rec; RELEASE rec`
			}
			if _, err := tx.ExecContext(ctx, undo); err != nil {
				return err
			}
			if row.res.Err != nil {
				// Domains created under the savepoint are gone again.
				clear(domains)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	out := make([]ImportResult, len(rows))
	for i, row := range rows {
		if row.res.Err != nil {
			row.res.Status = ImportFailed
			row.res.Changed = nil
		}
		out[i] = row.res
	}
	return out, nil
}

// validate checks a record and normalizes its address, hash and aliases.
func (row *importRow) validate() error {
	local, domain, err := SplitAddress(strings.TrimSpace(row.rec.Address))
	if err != nil {
		return err
	}
	row.rec.Address = local + "@" + domain
	row.res.Address = row.rec.Address
	row.domain = domain
	if row.rec.Hash != "" && row.rec.Password != "" {
		return fmt.Errorf("%w: both a password and a password hash", ErrInvalid)
	}
	if row.rec.Hash != "" {
		pw, plain, err := PlainFromHash(row.rec.Hash)
		if err != nil {
			return err
		}
		if plain {
			row.rec.Password, row.rec.Hash = pw, ""
		} else {
			h, err := CheckHash(row.rec.Hash)
			if err != nil {
				return err
			}
			row.hash, row.source = h, ImportFingerprint(row.rec.Address, h)
		}
	}
	if row.rec.Password != "" {
		// The policy of the server the passwords come from applied when
		// they were chosen: only what cannot be stored or typed is
		// refused here, not short passwords.
		if len(row.rec.Password) > 1024 || strings.ContainsAny(row.rec.Password, "\x00\r\n") {
			return fmt.Errorf("%w password: NUL, CR or LF, or longer than 1024 bytes", ErrInvalid)
		}
	}
	if row.rec.QuotaBytes != nil && *row.rec.QuotaBytes < 0 {
		return fmt.Errorf("%w quota %d", ErrInvalid, *row.rec.QuotaBytes)
	}
	if s := row.rec.APOPSecret; s != nil && *s != "" {
		if err := CheckPassword(*s); err != nil {
			return fmt.Errorf("apop secret: %w", err)
		}
	}
	for _, a := range row.rec.Aliases {
		n, err := NormalizeAddress(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("alias: %w", err)
		}
		if strings.EqualFold(n, row.rec.Address) {
			return fmt.Errorf("%w alias %s: the account's own address", ErrInvalid, n)
		}
		if !slices.ContainsFunc(row.aliases, func(x string) bool { return strings.EqualFold(x, n) }) {
			row.aliases = append(row.aliases, n)
		}
	}
	return nil
}

// hashPlain hashes the plain-text passwords of rows with argon2id, workers
// at a time. A password that matches the account's stored hash keeps it.
func (d *DB) hashPlain(ctx context.Context, rows []*importRow, workers int) error {
	var todo []*importRow
	for _, row := range rows {
		if row.res.Err == nil && row.rec.Password != "" {
			todo = append(todo, row)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	work := make(chan *importRow)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range min(workers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for row := range work {
				var stored string
				err := d.db.R.QueryRowContext(ctx, `SELECT password_hash FROM accounts WHERE address=?`, row.rec.Address).Scan(&stored)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					mu.Lock()
					firstErr = cmp(firstErr, fmt.Errorf("look up %s: %w", row.rec.Address, err))
					mu.Unlock()
					continue
				}
				if stored != "" && VerifyPassword(stored, row.rec.Password) {
					continue // unchanged: keep the stored hash
				}
				h, err := HashPassword(row.rec.Password)
				if err != nil {
					row.res.Err = err
					continue
				}
				row.hash = h
			}
		}()
	}
	for _, row := range todo {
		select {
		case work <- row:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// importRow applies one validated record in tx.
func (d *DB) importRow(ctx context.Context, tx *sql.Tx, row *importRow, domains map[string]bool, opt ImportOptions) (ImportStatus, []string, error) {
	r := row.rec
	var changed []string
	if err := ensureDomain(ctx, tx, row.domain, domains, opt.CreateDomains); err != nil {
		return ImportFailed, nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM aliases WHERE address=?`, r.Address).Scan(&n); err != nil {
		return ImportFailed, nil, err
	}
	if n > 0 {
		return ImportFailed, nil, fmt.Errorf("%s is an alias: %w", r.Address, ErrExists)
	}
	var id int64
	var hash, source, apop string
	var quota int64
	var admin bool
	err := tx.QueryRowContext(ctx, `SELECT id, password_hash, password_source, apop_secret, quota_bytes, admin FROM accounts WHERE address=?`, r.Address).
		Scan(&id, &hash, &source, &apop, &quota, &admin)
	status := ImportUnchanged
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if row.hash == "" {
			return ImportFailed, nil, fmt.Errorf("%w: a new account needs a password or a password hash", ErrInvalid)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts(address, domain, password_hash, password_source, apop_secret, quota_bytes, admin, created) VALUES(?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Address, row.domain, row.hash, row.source, deref(r.APOPSecret, ""), deref(r.QuotaBytes, 0), deref(r.Admin, false), time.Now().Unix())
		if err != nil {
			return ImportFailed, nil, fmt.Errorf("add account: %w", err)
		}
		status = ImportCreated
	case err != nil:
		return ImportFailed, nil, fmt.Errorf("look up account: %w", err)
	default:
		set := func(what, query string, args ...any) error {
			if _, err := tx.ExecContext(ctx, query, append(args, id)...); err != nil {
				return fmt.Errorf("update %s: %w", what, err)
			}
			changed = append(changed, what)
			return nil
		}
		// An imported hash is unchanged if it is stored as it is, or was
		// (the login path has replaced it by argon2id since).
		if row.hash != "" && row.hash != hash && (row.source == "" || row.source != source) {
			if err := set("password", `UPDATE accounts SET password_hash=?, password_source=? WHERE id=?`, row.hash, row.source); err != nil {
				return ImportFailed, nil, err
			}
		}
		if r.QuotaBytes != nil && *r.QuotaBytes != quota {
			if err := set("quota", `UPDATE accounts SET quota_bytes=? WHERE id=?`, *r.QuotaBytes); err != nil {
				return ImportFailed, nil, err
			}
		}
		if r.APOPSecret != nil && *r.APOPSecret != apop {
			if err := set("apop secret", `UPDATE accounts SET apop_secret=? WHERE id=?`, *r.APOPSecret); err != nil {
				return ImportFailed, nil, err
			}
		}
		if r.Admin != nil && *r.Admin != admin {
			if err := set("admin", `UPDATE accounts SET admin=? WHERE id=?`, *r.Admin); err != nil {
				return ImportFailed, nil, err
			}
		}
	}
	for _, alias := range row.aliases {
		did, err := importAlias(ctx, tx, alias, r.Address, domains, opt.CreateDomains)
		if err != nil {
			return ImportFailed, nil, err
		}
		if did && status != ImportCreated {
			changed = append(changed, "alias "+alias)
		}
	}
	if status == ImportUnchanged && len(changed) > 0 {
		status = ImportUpdated
	}
	return status, changed, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ensureDomain checks that domain is local, creating it if allowed.
// known caches the answers of the transaction.
func ensureDomain(ctx context.Context, tx *sql.Tx, domain string, known map[string]bool, create bool) error {
	if known[domain] {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE name=?`, domain).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if !create {
			return fmt.Errorf("domain %s is not a local domain (add it with 'jodmai domain add %s', or import with --create-domains): %w", domain, domain, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO domains(name, created) VALUES(?, ?)`, domain, time.Now().Unix()); err != nil {
			return fmt.Errorf("add domain %s: %w", domain, err)
		}
	}
	known[domain] = true
	return nil
}

// importAlias makes alias deliver to target: a new alias, or target added
// to an existing one. It reports whether it changed anything.
func importAlias(ctx context.Context, tx *sql.Tx, alias, target string, domains map[string]bool, create bool) (bool, error) {
	_, domain, _ := SplitAddress(alias)
	if err := ensureDomain(ctx, tx, domain, domains, create); err != nil {
		return false, fmt.Errorf("alias %s: %w", alias, err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE address=?`, alias).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, fmt.Errorf("alias %s is an account: %w", alias, ErrExists)
	}
	var targets string
	err := tx.QueryRowContext(ctx, `SELECT targets FROM aliases WHERE address=?`, alias).Scan(&targets)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO aliases(address, domain, targets) VALUES(?, ?, ?)`, alias, domain, target); err != nil {
			return false, fmt.Errorf("add alias %s: %w", alias, err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up alias %s: %w", alias, err)
	}
	list := strings.Split(targets, "\n")
	if slices.ContainsFunc(list, func(t string) bool { return strings.EqualFold(t, target) }) {
		return false, nil
	}
	list = append(list, target)
	if _, err := tx.ExecContext(ctx, `UPDATE aliases SET targets=? WHERE address=?`, strings.Join(list, "\n"), alias); err != nil {
		return false, fmt.Errorf("update alias %s: %w", alias, err)
	}
	return true, nil
}
