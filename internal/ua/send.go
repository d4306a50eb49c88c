package ua

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// dial opens a TCP connection to s, wrapped in TLS when s.TLS is implicit.
func (acc *Account) dial(ctx context.Context, s *Server) (net.Conn, *tls.Config, error) {
	tc, err := acc.serverTLS(s)
	if err != nil {
		return nil, nil, err
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	if s.TLS == TLSImplicit {
		td := tls.Dialer{NetDialer: &d, Config: tc}
		c, err := td.DialContext(ctx, "tcp", s.Server)
		if err != nil {
			return nil, nil, fmt.Errorf("connect %s: %w", s.Server, err)
		}
		return c, tc, nil
	}
	c, err := d.DialContext(ctx, "tcp", s.Server)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", s.Server, err)
	}
	return c, tc, nil
}

// Send submits msg over the account's SMTP server from the account's
// address to rcpts, with STARTTLS or implicit TLS and AUTH PLAIN.
func (acc *Account) Send(ctx context.Context, password string, from string, rcpts []string, msg []byte) error {
	s := acc.SMTP
	if s == nil {
		return errors.New("account has no smtp server")
	}
	conn, tc, err := acc.dial(ctx, s)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var c *smtp.Client
	if s.TLS == TLSStartTLS {
		c, err = smtp.NewClientStartTLS(conn, tc)
		if err != nil {
			conn.Close()
			return fmt.Errorf("smtp starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		if err := c.Auth(sasl.NewPlainClient("", acc.Username, password)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.SendMail(from, rcpts, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return c.Quit()
}

// AppendSent stores msg, flagged \Seen, in the account's imap_sent mailbox
// on the IMAP server.
func (acc *Account) AppendSent(ctx context.Context, password string, msg []byte) error {
	c, err := acc.DialIMAP(ctx, password)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	cmd := c.Append(acc.IMAPSent, int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return fmt.Errorf("imap append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap append: %w", err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("imap append to %s: %w", acc.IMAPSent, err)
	}
	return c.Logout().Wait()
}
