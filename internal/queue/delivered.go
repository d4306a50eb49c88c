package queue

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/remote"
)

// maxDeliveredHeaderRead bounds what NotifyDelivered reads of a message too
// big to return whole: its header is all the DSN carries then.
const maxDeliveredHeaderRead = 1 << 20

// NotifyDelivered sends the "delivered" DSN of RFC 3461 §6.2 for local
// recipients whose NOTIFY includes SUCCESS: this server made the final
// delivery, so it reports it (RFC 3464 Action: delivered, Status: 2.0.0).
// body is the message as stored (a Return-Path first is skipped), env gives
// its sender, ENVID and RET, rcpts the recipients as they were given in
// RCPT, with their NOTIFY and ORCPT. A null sender gets nothing (RFC 3461
// §6.2: never a DSN about a DSN). It returns once the DSN is durable: in a
// local sender's mailboxes, or queued for a remote one.
func (q *Queue) NotifyDelivered(ctx context.Context, body *blob.Temp, env Envelope, rcpts []remote.Recipient) error {
	if env.From == "" || len(rcpts) == 0 {
		return nil
	}
	r, err := body.NewReader()
	if err != nil {
		return fmt.Errorf("queue: delivered DSN: open body: %w", err)
	}
	defer r.Close()
	offset, has8bit, err := inspectBody(r, body.Size)
	if err != nil {
		return fmt.Errorf("queue: delivered DSN: %w", err)
	}
	ret := strings.ToUpper(env.Ret)
	n := body.Size
	if n-offset > maxReturnedBody {
		// Too big to return whole: composeDSN sends the header only.
		ret, n = "", min(n, offset+maxDeliveredHeaderRead)
	}
	data := make([]byte, n)
	if _, err := r.ReadAt(data, 0); err != nil && err != io.EOF {
		return fmt.Errorf("queue: delivered DSN: read body: %w", err)
	}
	now := q.now()
	m := msgRow{id: blob.NewID(), sender: env.From, envid: env.EnvID, ret: ret, has8bit: has8bit || env.Has8bit,
		body: data, offset: offset, size: n, created: now}
	owed := make([]noticeRow, 0, len(rcpts))
	for _, rc := range rcpts {
		owed = append(owed, noticeRow{addr: rc.Addr, notify: rc.Notify, orcpt: rc.ORcpt, notice: "delivered", lastAttempt: now})
	}
	raw, err := q.composeDSN(m, owed)
	if err != nil {
		return fmt.Errorf("queue: delivered DSN: %w", err)
	}
	if err := q.sendDSN(ctx, m, raw); err != nil {
		return fmt.Errorf("queue: delivered DSN: %w", err)
	}
	return nil
}
