package thread

// THREAD (RFC 5256 §3): the ORDEREDSUBJECT and REFERENCES algorithms.

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Msg is one message as the threading algorithms see it.
type Msg struct {
	Num   uint32 // what the response names: sequence number or UID
	Seq   uint32 // sequence number, the final tie-break
	Sent  time.Time
	Base  string // base subject, i;ascii-casemap form
	Reply bool   // the subject had a reply/forward marker
	MsgID string // "" when missing or invalid
	Refs  []string
}

// Node is a container of the thread tree (a message, or a dummy that
// stands for one that is referenced but absent); Append writes a tree.
type Node struct {
	msg      *Msg
	parent   *Node
	children []*Node
}

// ParseIDs returns the message ids ("<...>", brackets removed) in a
// References, In-Reply-To or Message-ID value; folding white space inside
// an id is removed, empty ids are skipped.
func ParseIDs(v string) []string {
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

// firstMsg is the message that dates a container: its own, or for a
// dummy its first child's.
func firstMsg(n *Node) *Msg {
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

func compare(a, b *Node) int {
	ma, mb := firstMsg(a), firstMsg(b)
	if ma == nil || mb == nil {
		return 0
	}
	if r := ma.Sent.Compare(mb.Sent); r != 0 {
		return r
	}
	return cmp.Compare(ma.Seq, mb.Seq)
}

// sortTree sorts every set of siblings by sent date, deepest first
// (RFC 5256 §3 REFERENCES step 6), so a dummy sorts by its first child.
func sortTree(nodes []*Node) {
	for _, n := range nodes {
		sortTree(n.children)
	}
	slices.SortStableFunc(nodes, compare)
}

// OrderedSubject is ORDEREDSUBJECT: messages grouped by base
// subject; in each thread the first message (by sent date) is the parent
// of all the others; threads ordered by their first message's date.
func OrderedSubject(msgs []*Msg) []*Node {
	sorted := slices.Clone(msgs)
	slices.SortStableFunc(sorted, func(a, b *Msg) int {
		if r := strings.Compare(a.Base, b.Base); r != 0 {
			return r
		}
		if r := a.Sent.Compare(b.Sent); r != 0 {
			return r
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	var roots []*Node
	var cur *Node
	for _, m := range sorted {
		if cur != nil && cur.msg.Base == m.Base {
			cur.children = append(cur.children, &Node{msg: m, parent: cur})
			continue
		}
		cur = &Node{msg: m}
		roots = append(roots, cur)
	}
	slices.SortStableFunc(roots, compare)
	return roots
}

// isAncestor reports whether a is n or one of n's ancestors.
func isAncestor(a, n *Node) bool {
	for ; n != nil; n = n.parent {
		if n == a {
			return true
		}
	}
	return false
}

func unlink(n *Node) {
	if p := n.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(c *Node) bool { return c == n })
		n.parent = nil
	}
}

// link makes p the parent of c unless that would make a loop.
func link(p, c *Node) {
	if isAncestor(c, p) {
		return
	}
	unlink(c)
	c.parent = p
	p.children = append(p.children, c)
}

// References is the REFERENCES algorithm of RFC 5256 §3. msgs are in
// sequence order.
func References(msgs []*Msg) []*Node {
	ids := map[string]*Node{}
	var all []*Node // every container, in creation order
	get := func(id string) *Node {
		n := ids[id]
		if n == nil {
			n = &Node{}
			ids[id] = n
			all = append(all, n)
		}
		return n
	}
	// (1) Link messages along their references.
	for _, m := range msgs {
		var node *Node
		// A missing or duplicate Message-ID gets a unique one: the node is
		// simply not in the id table.
		if m.MsgID != "" {
			if n := ids[m.MsgID]; n == nil || n.msg == nil {
				node = get(m.MsgID)
			}
		}
		if node == nil {
			node = &Node{}
			all = append(all, node)
		}
		node.msg = m
		// (1A) Each reference is the parent of the next, unless the
		// child already has a parent or a loop would result.
		var prev *Node
		for _, ref := range m.Refs {
			r := get(ref)
			if prev != nil && r.parent == nil && r != prev && !isAncestor(r, prev) {
				link(prev, r)
			}
			prev = r
		}
		// (1B) The last reference is the message's parent (no parent
		// without references), replacing a parent from a truncated
		// References line, unless that would make a loop.
		unlink(node)
		if prev != nil && prev != node && !isAncestor(node, prev) {
			link(prev, node)
		}
	}
	// (2) The root set: containers without a parent.
	var roots []*Node
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	// (3) Prune dummies.
	roots = prune(roots, true)
	for _, r := range roots {
		r.parent = nil
	}
	// (4) Sort the root set by date (a dummy by its first child, after
	// its children are sorted).
	for _, r := range roots {
		if r.msg == nil {
			slices.SortStableFunc(r.children, compare)
		}
	}
	slices.SortStableFunc(roots, compare)
	// (5) Gather threads with the same base subject.
	roots = gatherSubjects(roots)
	// (6) Sort every set of siblings.
	sortTree(roots)
	return roots
}

// prune removes dummies from a list of siblings (RFC 5256 §3 step 3):
// a dummy without children goes; one with children is replaced by them,
// except at the root when it has more than one.
func prune(nodes []*Node, root bool) []*Node {
	var out []*Node
	for _, n := range nodes {
		n.children = prune(n.children, false)
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

// subject is the subject of a thread: its root message's base
// subject, or its first child's for a dummy.
func subject(n *Node) (string, *Msg) {
	m := n.msg
	if m == nil && len(n.children) > 0 {
		m = n.children[0].msg
	}
	if m == nil {
		return "", nil
	}
	return m.Base, m
}

// gatherSubjects is RFC 5256 §3 step 5.
func gatherSubjects(roots []*Node) []*Node {
	// (5B) One container per subject: prefer a dummy, then a message
	// that is not a reply.
	table := map[string]*Node{}
	for _, r := range roots {
		subj, _ := subject(r)
		if subj == "" {
			continue
		}
		t := table[subj]
		switch {
		case t == nil:
			table[subj] = r
		case t.msg != nil && (r.msg == nil || (t.msg.Reply && !r.msg.Reply)):
			table[subj] = r
		}
	}
	// (5C) Merge threads into the one in the table.
	index := make(map[*Node]int, len(roots))
	for i, r := range roots {
		index[r] = i
	}
	for i, r := range roots {
		if r == nil {
			continue
		}
		subj, _ := subject(r)
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
		case r.msg != nil && r.msg.Reply && !t.msg.Reply:
			r.parent = t
			t.children = append(t.children, r)
		default:
			d := &Node{children: []*Node{t, r}}
			t.parent, r.parent = d, d
			j := index[t]
			roots[j] = d
			index[d] = j
			table[subj] = d
		}
		roots[i] = nil
	}
	return slices.DeleteFunc(roots, func(n *Node) bool { return n == nil })
}

// Append appends the thread-list form of roots (RFC 5256 §4):
// "(1 2 (3)(4 5))".
func Append(b []byte, roots []*Node) []byte {
	for _, r := range roots {
		b = append(b, '(')
		b = appendNode(b, r)
		b = append(b, ')')
	}
	return b
}

// appendNode writes a container and its descendants inside an open
// parenthesis: a single child continues the list, several children each
// get their own parenthesized list.
func appendNode(b []byte, n *Node) []byte {
	for {
		if n.msg != nil {
			b = strconv.AppendUint(b, uint64(n.msg.Num), 10)
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
			b = appendNode(b, c)
			b = append(b, ')')
		}
		return b
	}
}
