package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// State is a recipient's delivery state.
type State string

// Recipient states.
const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Failed    State = "failed"
)

func stateName(s int) State {
	switch s {
	case stateDelivered:
		return Delivered
	case stateFailed:
		return Failed
	}
	return Pending
}

// MessageInfo describes a queued message for the operator.
type MessageInfo struct {
	ID      string
	From    string // "" is the null sender
	Account string
	Size    int64
	Created time.Time
	Held    bool
	EnvID   string
	Ret     string
	// RequireTLS, SMTPUTF8 and Signed (a DKIM signature was made at Add).
	RequireTLS, SMTPUTF8, Signed bool
	Recipients                   []RecipientInfo
}

// RecipientInfo is one recipient of a MessageInfo.
type RecipientInfo struct {
	Addr, Domain, Notify, ORcpt string
	State                       State
	Attempts                    int
	// NextAttempt is meaningful while Pending; LastAttempt is zero before
	// the first attempt.
	NextAttempt, LastAttempt time.Time
	// Code, Enhanced, Text and Host are the last attempt's result.
	Code     int
	Enhanced string
	Text     string
	Host     string
	// Notice is a DSN not yet sent: "failed", "delayed", "relayed" or "".
	Notice string
}

// List returns every queued message, oldest first.
func (q *Queue) List(ctx context.Context) ([]MessageInfo, error) {
	return q.query(ctx, "")
}

// Show returns one message; ErrNotFound if it is not queued.
func (q *Queue) Show(ctx context.Context, id string) (MessageInfo, error) {
	ms, err := q.query(ctx, id)
	if err != nil {
		return MessageInfo{}, err
	}
	if len(ms) == 0 {
		return MessageInfo{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return ms[0], nil
}

func (q *Queue) query(ctx context.Context, id string) ([]MessageInfo, error) {
	where, args := "", []any{}
	if id != "" {
		where, args = "WHERE id = ?", []any{id}
	}
	rows, err := q.db.R.QueryContext(ctx, `SELECT id, sender, account, size - body_offset, created, held, envid, ret, requiretls, smtputf8, dkim IS NOT NULL
		FROM msg `+where+` ORDER BY created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	var out []MessageInfo
	idx := map[string]int{}
	for rows.Next() {
		var m MessageInfo
		var created int64
		if err := rows.Scan(&m.ID, &m.From, &m.Account, &m.Size, &created, &m.Held, &m.EnvID, &m.Ret, &m.RequireTLS, &m.SMTPUTF8, &m.Signed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list queue: %w", err)
		}
		m.Created = time.UnixMilli(created)
		idx[m.ID] = len(out)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	rwhere := ""
	if id != "" {
		rwhere = "WHERE msg = ?"
	}
	rows, err = q.db.R.QueryContext(ctx, `SELECT msg, addr, domain, notify, orcpt, state, attempts, next_attempt, last_attempt, code, enhanced, text, host, notice
		FROM rcpt `+rwhere+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var msg string
		var r RecipientInfo
		var state int
		var next, last int64
		if err := rows.Scan(&msg, &r.Addr, &r.Domain, &r.Notify, &r.ORcpt, &state, &r.Attempts, &next, &last, &r.Code, &r.Enhanced, &r.Text, &r.Host, &r.Notice); err != nil {
			return nil, fmt.Errorf("list queue: %w", err)
		}
		r.State = stateName(state)
		r.NextAttempt = time.UnixMilli(next)
		if last > 0 {
			r.LastAttempt = time.UnixMilli(last)
		}
		if i, ok := idx[msg]; ok {
			out[i].Recipients = append(out[i].Recipients, r)
		}
	}
	return out, rows.Err()
}

// Retry makes the pending recipients of message id due now (a held
// message stays held).
func (q *Queue) Retry(ctx context.Context, id string) error {
	return q.change(ctx, id, `UPDATE rcpt SET next_attempt = ? WHERE msg = ? AND state = 0`, q.now().UnixMilli(), id)
}

// Hold stops delivery attempts for message id until Release. An attempt in
// progress finishes.
func (q *Queue) Hold(ctx context.Context, id string) error {
	return q.change(ctx, id, `UPDATE msg SET held = 1 WHERE id = ?`, id)
}

// Release undoes Hold and makes the message due now.
func (q *Queue) Release(ctx context.Context, id string) error {
	if err := q.change(ctx, id, `UPDATE msg SET held = 0 WHERE id = ?`, id); err != nil {
		return err
	}
	return q.Retry(ctx, id)
}

// Delete removes message id from the queue without any DSN.
func (q *Queue) Delete(ctx context.Context, id string) error {
	err := q.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rcpt WHERE msg = ?`, id); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM msg WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if k, _ := r.RowsAffected(); k == 0 {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	q.bodies.Remove(id)
	q.log.Info("queue: message deleted by the operator", "id", id)
	return nil
}

// Flush makes every pending recipient of every message not held due now.
// It returns how many recipients it made due.
func (q *Queue) Flush(ctx context.Context) (int, error) {
	var n int64
	err := q.db.Tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE rcpt SET next_attempt = ? WHERE state = 0 AND msg IN (SELECT id FROM msg WHERE held = 0)`, q.now().UnixMilli())
		if err != nil {
			return err
		}
		n, _ = r.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("flush: %w", err)
	}
	q.Wake()
	return int(n), nil
}

// change runs one update for message id, which must exist.
func (q *Queue) change(ctx context.Context, id, stmt string, args ...any) error {
	err := q.db.Tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM msg WHERE id = ?`, id).Scan(&one); err == sql.ErrNoRows {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		} else if err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, stmt, args...)
		return err
	})
	if err != nil {
		return err
	}
	q.Wake()
	return nil
}
