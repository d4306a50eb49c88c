package store

import (
	"context"

	"fmt"
	"sync"
)

// Reading an inline body is one SQLite query (a read transaction: locks,
// a b-tree descent), several times the cost of reading a small file. Mail
// is mostly read in order (POP3 RETR 1..n, IMAP FETCH 1:*), and inline
// bodies are keyed in delivery order, so a miss reads the requested body
// and the next few small ones in the same query, and keeps them in a small
// cache shared by the whole store.
const (
	// readAheadRows is how many bodies one query reads.
	readAheadRows = 16
	// readAheadMax is the largest body read ahead (the requested one is
	// read whatever its size).
	readAheadMax = 16 << 10
	// inlineCacheMax bounds the cache's bytes; it is emptied when full.
	inlineCacheMax = 4 << 20
)

type inlineCacheKey struct {
	account, key int64
}

// inlineCache holds inline bodies read ahead. Bodies are immutable and
// their keys never reused, so an entry is never stale; one that belongs to
// a message expunged meanwhile is still that message's body, as an open
// body file would be.
type inlineCache struct {
	mu     sync.Mutex
	bodies map[inlineCacheKey][]byte
	bytes  int
}

// take removes and returns a cached body: most bodies are read once.
func (c *inlineCache) take(k inlineCacheKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.bodies[k]
	if ok {
		delete(c.bodies, k)
		c.bytes -= len(b)
	}
	return b, ok
}

func (c *inlineCache) put(k inlineCacheKey, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bodies == nil || c.bytes+len(b) > inlineCacheMax {
		c.bodies, c.bytes = map[inlineCacheKey][]byte{}, 0
	}
	if _, ok := c.bodies[k]; !ok {
		c.bodies[k] = b
		c.bytes += len(b)
	}
}

// forget drops the cached bodies of an account (removed: its keys start
// over if it were ever recreated).
func (c *inlineCache) forget(account int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, b := range c.bodies {
		if k.account == account {
			delete(c.bodies, k)
			c.bytes -= len(b)
		}
	}
}

// readInlineQuery reads body ?1 and up to readAheadRows-1 following small
// bodies (data NULL for a larger one: length() does not read it).
const readInlineQuery = `SELECT id, CASE WHEN id = ?1 OR length(data) <= ?2 THEN data END FROM inline_bodies WHERE id >= ?1 ORDER BY id LIMIT ?3`

func (a *Account) openInline(ctx context.Context, id string) (Body, error) {
	key := inlineKey(id)
	if b, ok := a.s.inline.take(inlineCacheKey{a.ID, key}); ok {
		return memBody(b), nil
	}
	rows, err := a.st.readInline.QueryContext(ctx, key, readAheadMax, readAheadRows)
	if err != nil {
		return nil, fmt.Errorf("read inline body %s: %w", id, err)
	}
	defer rows.Close()
	var found []byte
	for rows.Next() {
		var k int64
		var data []byte
		if err := rows.Scan(&k, &data); err != nil {
			return nil, fmt.Errorf("read inline body %s: %w", id, err)
		}
		switch {
		case k == key:
			found = data
			if found == nil {
				found = []byte{}
			}
		case data != nil:
			a.s.inline.put(inlineCacheKey{a.ID, k}, data)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read inline body %s: %w", id, err)
	}
	if found == nil {
		return nil, fmt.Errorf("%w: inline body %s", ErrNoMessage, id)
	}
	return memBody(found), nil
}
