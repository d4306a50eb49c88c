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

// Vacation auto-replies (RFC 3834): an account's owner sets a message that
// answers mail while they are away. The rules for whom to answer are in
// internal/vacation; this file keeps the settings and the record of whom
// was answered, so that a sender gets at most one reply per
// VacationPeriod, across restarts.

const (
	// VacationPeriod is how long a sender who got an auto-reply gets no
	// other from the same account (RFC 3834 §3.1.1 suggests 7 days).
	VacationPeriod = 7 * 24 * time.Hour
	// MaxVacationSubject and MaxVacationBody bound the settings, in bytes.
	MaxVacationSubject = 200
	MaxVacationBody    = 8000
	// maxVacationReplies bounds the senders remembered per account: past
	// it, the oldest records go (that sender may get a second reply
	// early, which is better than growing without bound under a flood of
	// distinct senders).
	maxVacationReplies = 1000
)

// Vacation is an account's auto-reply setting.
type Vacation struct {
	// Enabled turns the auto-reply on.
	Enabled bool
	// Subject is the reply's subject; "" makes it "Auto: " and the
	// original subject.
	Subject string
	// Body is the reply's text (plain text, UTF-8).
	Body string
	// Start and End bound when replies go out (End is exclusive); zero:
	// no bound.
	Start, End time.Time
}

// Active reports whether v answers mail arriving at now.
func (v Vacation) Active(now time.Time) bool {
	if !v.Enabled {
		return false
	}
	if !v.Start.IsZero() && now.Before(v.Start) {
		return false
	}
	if !v.End.IsZero() && !now.Before(v.End) {
		return false
	}
	return true
}

// validate checks the limits SetVacation enforces.
func (v Vacation) validate() error {
	if len(v.Subject) > MaxVacationSubject || !utf8.ValidString(v.Subject) ||
		strings.ContainsFunc(v.Subject, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%w vacation subject: at most %d bytes of printable text on one line", ErrInvalid, MaxVacationSubject)
	}
	if len(v.Body) > MaxVacationBody || !utf8.ValidString(v.Body) || strings.ContainsRune(v.Body, 0) {
		return fmt.Errorf("%w vacation message: at most %d bytes of text", ErrInvalid, MaxVacationBody)
	}
	if v.Enabled && strings.TrimSpace(v.Body) == "" {
		return fmt.Errorf("%w vacation message: empty", ErrInvalid)
	}
	if !v.Start.IsZero() && !v.End.IsZero() && !v.End.After(v.Start) {
		return fmt.Errorf("%w vacation dates: the end must come after the start", ErrInvalid)
	}
	return nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(u int64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(u, 0)
}

// Vacation returns the auto-reply setting of account accountID: the zero
// Vacation (off) when none was ever set.
func (d *DB) Vacation(ctx context.Context, accountID int64) (Vacation, error) {
	var v Vacation
	var start, end int64
	err := d.db.R.QueryRowContext(ctx, `SELECT enabled, subject, body, start, end FROM vacations WHERE account_id=?`, accountID).
		Scan(&v.Enabled, &v.Subject, &v.Body, &start, &end)
	if errors.Is(err, sql.ErrNoRows) {
		return Vacation{}, nil
	}
	if err != nil {
		return Vacation{}, fmt.Errorf("read vacation of account %d: %w", accountID, err)
	}
	v.Start, v.End = timeOrZero(start), timeOrZero(end)
	return v, nil
}

// SetVacation replaces the auto-reply setting of account accountID. The
// senders already answered stay answered: turning the reply off and on
// again does not answer them a second time within VacationPeriod.
func (d *DB) SetVacation(ctx context.Context, accountID int64, v Vacation) error {
	v.Body = strings.ReplaceAll(v.Body, "\r\n", "\n")
	if err := v.validate(); err != nil {
		return err
	}
	defer d.wrote()
	_, err := d.db.W.ExecContext(ctx, `INSERT INTO vacations(account_id, enabled, subject, body, start, end) VALUES(?, ?, ?, ?, ?, ?)
		ON CONFLICT(account_id) DO UPDATE SET enabled=excluded.enabled, subject=excluded.subject, body=excluded.body, start=excluded.start, end=excluded.end`,
		accountID, v.Enabled, v.Subject, v.Body, unixOrZero(v.Start), unixOrZero(v.End))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("account %d: %w", accountID, ErrNotFound)
		}
		return fmt.Errorf("set vacation of account %d: %w", accountID, err)
	}
	return nil
}

// VacationReplyDue reports whether account accountID should auto-reply to
// sender at now, and if so records the reply (expiring after
// VacationPeriod) in the same transaction: of two deliveries racing, one
// gets true. The record is made before the reply is queued: a reply that
// then fails to queue is not retried, never sent twice.
func (d *DB) VacationReplyDue(ctx context.Context, accountID int64, sender string, now time.Time) (bool, error) {
	sender = strings.ToLower(sender)
	due := false
	err := d.db.Tx(ctx, func(tx *sql.Tx) error {
		var expires int64
		err := tx.QueryRowContext(ctx, `SELECT expires FROM vacation_replies WHERE account_id=? AND sender=?`, accountID, sender).Scan(&expires)
		switch {
		case err == nil && expires > now.Unix():
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		due = true
		if _, err := tx.ExecContext(ctx, `DELETE FROM vacation_replies WHERE account_id=? AND expires<=?`, accountID, now.Unix()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO vacation_replies(account_id, sender, expires) VALUES(?, ?, ?)`,
			accountID, sender, now.Add(VacationPeriod).Unix()); err != nil {
			return err
		}
		// Bounded: past maxVacationReplies, the records closest to
		// expiry go.
		_, err = tx.ExecContext(ctx, `DELETE FROM vacation_replies WHERE account_id=? AND sender IN (
			SELECT sender FROM vacation_replies WHERE account_id=? ORDER BY expires DESC LIMIT -1 OFFSET ?)`,
			accountID, accountID, maxVacationReplies)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record vacation reply of account %d: %w", accountID, err)
	}
	return due, nil
}

// VacationAccounts returns the ids of the accounts whose auto-reply is
// enabled (whatever its dates), so that delivery can skip the others
// without a lookup each.
func (d *DB) VacationAccounts(ctx context.Context) (map[int64]bool, error) {
	rows, err := d.db.R.QueryContext(ctx, `SELECT account_id FROM vacations WHERE enabled`)
	if err != nil {
		return nil, fmt.Errorf("list vacations: %w", err)
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
