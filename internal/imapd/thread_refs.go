package imapd

// THREAD (RFC 5256 §3): the ORDEREDSUBJECT and REFERENCES algorithms, on
// plain data so they can be tested without a mailbox.

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// threadMsg is one message as the threading algorithms see it.
type threadMsg struct {
	num   uint32 // what the response names: sequence number or UID
	seq   uint32 // sequence number, the final tie-break
	sent  time.Time
	base  string // base subject, i;ascii-casemap form
	reply bool   // the subject had a reply/forward marker
	msgID string // "" when missing or invalid
	refs  []string
}

// threadNode is a container of the thread tree; msg is nil for a dummy.
type threadNode struct {
	msg      *threadMsg
	parent   *threadNode
	children []*threadNode
}

// threadParseIDs returns the message ids ("<...>", brackets removed) in a
// References, In-Reply-To or Message-ID value; folding white space inside
// an id is removed, empty ids are skipped.
func threadParseIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		v = v[i+1:]
		j := strings.IndexAny(v, "<>")
		if j < 0 {
			return out
		}
		if v[j] == '<' { // "<a <b>": the first is not an id
			continue
		}
		id := strings.Join(strings.Fields(v[:j]), "")
		v = v[j+1:]
		if id != "" {
			out = append(out, id)
		}
	}
}

// threadDate is the sort date of a container: its message's, or for a
// dummy its first child's.
func threadFirstMsg(n *threadNode) *threadMsg {
	for n != nil {
		if n.msg != nil {
			return n.msg
		}
		if len(n.children) == 0 {
			return nil
		}
		n = n.children[0]
	}
	return nil
}

func threadCompare(a, b *threadNode) int {
	ma, mb := threadFirstMsg(a), threadFirstMsg(b)
	if ma == nil || mb == nil {
		return 0
	}
	if r := ma.sent.Compare(mb.sent); r != 0 {
		return r
	}
	return cmp.Compare(ma.seq, mb.seq)
}

// threadSortTree sorts every set of siblings by sent date, deepest first
// (RFC 5256 §3 REFERENCES step 6), so a dummy sorts by its first child.
func threadSortTree(nodes []*threadNode) {
	for _, n := range nodes {
		threadSortTree(n.children)
	}
	slices.SortStableFunc(nodes, threadCompare)
}

// threadOrderedSubject is ORDEREDSUBJECT: messages grouped by base
// subject; in each thread the first message (by sent date) is the parent
// of all the others; threads ordered by their first message's date.
func threadOrderedSubject(msgs []*threadMsg) []*threadNode {
	sorted := slices.Clone(msgs)
	slices.SortStableFunc(sorted, func(a, b *threadMsg) int {
		if r := strings.Compare(a.base, b.base); r != 0 {
			return r
		}
		if r := a.sent.Compare(b.sent); r != 0 {
			return r
		}
		return cmp.Compare(a.seq, b.seq)
	})
	var roots []*threadNode
	var cur *threadNode
	for _, m := range sorted {
		if cur != nil && cur.msg.base == m.base {
			cur.children = append(cur.children, &threadNode{msg: m, parent: cur})
			continue
		}
		cur = &threadNode{msg: m}
		roots = append(roots, cur)
	}
	slices.SortStableFunc(roots, threadCompare)
	return roots
}

// threadIsAncestor reports whether a is n or one of n's ancestors.
func threadIsAncestor(a, n *threadNode) bool {
	for ; n != nil; n = n.parent {
		if n == a {
			return true
		}
	}
	return false
}

func threadUnlink(n *threadNode) {
	if p := n.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(c *threadNode) bool { return c == n })
		n.parent = nil
	}
}

// threadLink makes p the parent of c unless that would make a loop.
func threadLink(p, c *threadNode) {
	if threadIsAncestor(c, p) {
		return
	}
	threadUnlink(c)
	c.parent = p
	p.children = append(p.children, c)
}

// threadReferences is the REFERENCES algorithm of RFC 5256 §3. msgs are in
// sequence order.
func threadReferences(msgs []*threadMsg) []*threadNode {
	ids := map[string]*threadNode{}
	var all []*threadNode // every container, in creation order
	get := func(id string) *threadNode {
		n := ids[id]
		if n == nil {
			n = &threadNode{}
			ids[id] = n
			all = append(all, n)
		}
		return n
	}
	// (1) Link messages along their references.
	for _, m := range msgs {
		var node *threadNode
		// A missing or duplicate Message-ID gets a unique one: the node is
		// simply not in the id table.
		if m.msgID != "" {
			if n := ids[m.msgID]; n == nil || n.msg == nil {
				node = get(m.msgID)
			}
		}
		if node == nil {
			node = &threadNode{}
			all = append(all, node)
		}
		node.msg = m
		// (1A) Each reference is the parent of the next, unless the
		// child already has a parent or a loop would result.
		var prev *threadNode
		for _, ref := range m.refs {
			r := get(ref)
			if prev != nil && r.parent == nil && r != prev && !threadIsAncestor(r, prev) {
				threadLink(prev, r)
			}
			prev = r
		}
		// (1B) The last reference is the message's parent (no parent
		// without references), replacing a parent from a truncated
		// References line, unless that would make a loop.
		threadUnlink(node)
		if prev != nil && prev != node && !threadIsAncestor(node, prev) {
			threadLink(prev, node)
		}
	}
	// (2) The root set: containers without a parent.
	var roots []*threadNode
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	// (3) Prune dummies.
	roots = threadPrune(roots, true)
	for _, r := range roots {
		r.parent = nil
	}
	// (4) Sort the root set by date (a dummy by its first child, after
	// its children are sorted).
	for _, r := range roots {
		if r.msg == nil {
			slices.SortStableFunc(r.children, threadCompare)
		}
	}
	slices.SortStableFunc(roots, threadCompare)
	// (5) Gather threads with the same base subject.
	roots = threadGatherSubjects(roots)
	// (6) Sort every set of siblings.
	threadSortTree(roots)
	return roots
}

// threadPrune removes dummies from a list of siblings (RFC 5256 §3 step 3):
// a dummy without children goes; one with children is replaced by them,
// except at the root when it has more than one.
func threadPrune(nodes []*threadNode, root bool) []*threadNode {
	var out []*threadNode
	for _, n := range nodes {
		n.children = threadPrune(n.children, false)
		if n.msg == nil {
			if len(n.children) == 0 {
				continue
			}
			if !root || len(n.children) == 1 {
				for _, c := range n.children {
					c.parent = n.parent
				}
				out = append(out, n.children...)
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// threadSubject is the subject of a thread: its root message's base
// subject, or its first child's for a dummy.
func threadSubject(n *threadNode) (string, *threadMsg) {
	m := n.msg
	if m == nil && len(n.children) > 0 {
		m = n.children[0].msg
	}
	if m == nil {
		return "", nil
	}
	return m.base, m
}

// threadGatherSubjects is RFC 5256 §3 step 5.
func threadGatherSubjects(roots []*threadNode) []*threadNode {
	// (5B) One container per subject: prefer a dummy, then a message
	// that is not a reply.
	table := map[string]*threadNode{}
	for _, r := range roots {
		subj, _ := threadSubject(r)
		if subj == "" {
			continue
		}
		t := table[subj]
		switch {
		case t == nil:
			table[subj] = r
		case t.msg != nil && (r.msg == nil || (t.msg.reply && !r.msg.reply)):
			table[subj] = r
		}
	}
	// (5C) Merge threads into the one in the table.
	index := make(map[*threadNode]int, len(roots))
	for i, r := range roots {
		index[r] = i
	}
	for i, r := range roots {
		if r == nil {
			continue
		}
		subj, _ := threadSubject(r)
		if subj == "" {
			continue
		}
		t := table[subj]
		if t == r {
			continue
		}
		switch {
		case t.msg == nil && r.msg == nil:
			for _, c := range r.children {
				c.parent = t
			}
			t.children = append(t.children, r.children...)
		case t.msg == nil:
			r.parent = t
			t.children = append(t.children, r)
		case r.msg != nil && r.msg.reply && !t.msg.reply:
			r.parent = t
			t.children = append(t.children, r)
		default:
			d := &threadNode{children: []*threadNode{t, r}}
			t.parent, r.parent = d, d
			j := index[t]
			roots[j] = d
			index[d] = j
			table[subj] = d
		}
		roots[i] = nil
	}
	return slices.DeleteFunc(roots, func(n *threadNode) bool { return n == nil })
}

// threadAppend appends the thread-list form of roots (RFC 5256 §4):
// "(1 2 (3)(4 5))".
func threadAppend(b []byte, roots []*threadNode) []byte {
	for _, r := range roots {
		b = append(b, '(')
		b = threadAppendNode(b, r)
		b = append(b, ')')
	}
	return b
}

// threadAppendNode writes a container and its descendants inside an open
// parenthesis: a single child continues the list, several children each
// get their own parenthesized list.
func threadAppendNode(b []byte, n *threadNode) []byte {
	for {
		if n.msg != nil {
			b = strconv.AppendUint(b, uint64(n.msg.num), 10)
		}
		switch len(n.children) {
		case 0:
			return b
		case 1:
			if n.msg != nil {
				b = append(b, ' ')
			}
			n = n.children[0]
			continue
		}
		if n.msg != nil {
			b = append(b, ' ')
		}
		for _, c := range n.children {
			b = append(b, '(')
			b = threadAppendNode(b, c)
			b = append(b, ')')
		}
		return b
	}
}
