package testutil

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// ExportedConsts lists the exported constants declared in the Go file at
// path, for tests that check every exported tree constant is covered; a
// file without any fails the test.
func ExportedConsts(t testing.TB, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if n.IsExported() {
					out = append(out, n.Name)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s declares no exported constants", path)
	}
	return out
}
