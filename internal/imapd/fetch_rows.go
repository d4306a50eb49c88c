package imapd

// Reading many messages' index rows and structures at once, for FETCH,
// STORE, SEARCH, SORT and THREAD: never one query per message.

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/store"
)

// fetchRangeMin is the set size from which a UID range query (one
// statement, no parameters per UID) beats chunked "uid IN (...)" queries.
const fetchRangeMin = 32

// fetchChunk is how many messages FETCH and the body searches handle per
// batch of structures, which bounds the memory a command holds.
const fetchChunk = 256

// fetchRows returns the index rows of uids (UIDs in the view, any order)
// that still exist, in UID order, with at least the given fields. A dense
// set (most of the view between its lowest and highest UID) is read with
// one range query.
func (s *session) fetchRows(uids []uint32, fields store.RowFields) ([]store.Message, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	if !slices.IsSorted(uids) {
		uids = slices.Clone(uids)
		slices.Sort(uids)
	}
	uids = slices.Compact(uids)
	lo, hi := uids[0], uids[len(uids)-1]
	if len(uids) >= fetchRangeMin {
		i, _ := slices.BinarySearch(s.sel.uids, lo)
		j := len(s.sel.uids)
		if hi < math.MaxUint32 {
			j, _ = slices.BinarySearch(s.sel.uids, hi+1)
		}
		if span := j - i; span <= 2*len(uids) {
			rows, err := s.acct.MessagesInUIDRange(s.ctx(), s.sel.mb.ID, lo, hi, fields, span)
			if err != nil {
				return nil, err
			}
			if len(rows) == len(uids) {
				return rows, nil
			}
			// Keep only the requested UIDs (both lists ascend).
			out := rows[:0]
			k := 0
			for _, m := range rows {
				for k < len(uids) && uids[k] < m.UID {
					k++
				}
				if k < len(uids) && uids[k] == m.UID {
					out = append(out, m)
				}
			}
			return out, nil
		}
	}
	return s.acct.MessagesByUID(s.ctx(), s.sel.mb.ID, uids)
}

// fetchViewRows returns the rows, with at least the given fields, of every
// message in the view that the store still has and that is not pending
// expunge, in UID order (SEARCH, SORT, THREAD).
func (s *session) fetchViewRows(fields store.RowFields) ([]store.Message, error) {
	if len(s.sel.uids) == 0 {
		return nil, nil
	}
	rows, err := s.acct.MessagesInUIDRange(s.ctx(), s.sel.mb.ID, s.sel.uids[0], s.sel.lastUID(), fields, len(s.sel.uids))
	if err != nil {
		return nil, err
	}
	return s.fetchDropPending(rows), nil
}

// fetchDropPending removes from rows the messages expunged elsewhere and
// not yet announced: until then they keep their sequence numbers but are
// treated as gone.
func (s *session) fetchDropPending(rows []store.Message) []store.Message {
	switch len(s.sel.pending) {
	case 0:
		return rows
	case 1, 2, 3, 4:
		return slices.DeleteFunc(rows, func(m store.Message) bool { return s.sel.isPending(m.UID) })
	}
	set := make(map[uint32]bool, len(s.sel.pending))
	for _, u := range s.sel.pending {
		set[u] = true
	}
	return slices.DeleteFunc(rows, func(m store.Message) bool { return set[m.UID] })
}

// fetchMetas loads and decodes the structures of msgs (one batch): the
// result maps a message id to its tree; messages whose structure is gone
// or unreadable are missing.
func (s *session) fetchMetas(msgs []store.Message) (map[int64]*message.Part, error) {
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	raw, err := s.acct.MetaBatch(s.ctx(), ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]*message.Part, len(raw))
	for id, b := range raw {
		p := new(message.Part)
		if err := json.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("decode structure of message %d: %w", id, err)
		}
		out[id] = p
	}
	return out, nil
}

// fetchEnvelopeOnly decodes only the envelope of a stored structure: SORT and
// THREAD need nothing else, and skipping the part tree saves most of the
// decoding.
type fetchEnvelopeOnly struct {
	Envelope *message.Envelope `json:"env"`
}

// fetchEnvelopes loads the envelopes of msgs, keyed by message id, in
// batches.
func (s *session) fetchEnvelopes(msgs []store.Message) (map[int64]*message.Envelope, error) {
	out := make(map[int64]*message.Envelope, len(msgs))
	for start := 0; start < len(msgs); start += fetchChunk * 2 {
		batch := msgs[start:min(start+fetchChunk*2, len(msgs))]
		ids := make([]int64, len(batch))
		for i, m := range batch {
			ids[i] = m.ID
		}
		raw, err := s.acct.MetaBatch(s.ctx(), ids)
		if err != nil {
			return nil, err
		}
		for id, b := range raw {
			var e fetchEnvelopeOnly
			if err := json.Unmarshal(b, &e); err != nil {
				return nil, fmt.Errorf("decode envelope of message %d: %w", id, err)
			}
			if e.Envelope == nil {
				e.Envelope = &message.Envelope{}
			}
			out[id] = e.Envelope
		}
	}
	return out, nil
}
