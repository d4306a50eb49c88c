package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadersSettle: every read of an account's index goes through
// Account.reader, which settles the account's pending deliveries first, so
// that no reader misses a message the journal acknowledged. Only the
// account's own setup, the sweep at open and the committer's prepared
// statements use the read pool directly.
func TestReadersSettle(t *testing.T) {
	// noteUsage reads the usage counters for the usage table, which may
	// lag (usage.go): it must not wait for the committer.
	allowed := []string{"reader", "ensureDefaultMailboxes", "sweep", "prepare", "noteUsage"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "R" {
					return true
				}
				inner, ok := sel.X.(*ast.SelectorExpr)
				if !ok || inner.Sel.Name != "db" {
					return true
				}
				if recv, ok := inner.X.(*ast.Ident); ok && recv.Name == "a" && !slices.Contains(allowed, fn.Name.Name) {
					t.Errorf("%s: %s reads a.db.R directly; use a.reader(ctx), which settles pending deliveries first", fset.Position(sel.Pos()), fn.Name.Name)
				}
				return true
			})
		}
	}
}
