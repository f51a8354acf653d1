package docs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestReferenceIsDocumented keeps the reference complete: in the
// packages a module author or a client imports, every exported
// identifier has a doc comment, as go doc -all shows it. A struct field
// or interface method is documented by its own comment (above it or at
// the end of its line), or by the comment of the group it belongs to:
// the fields on the lines just above it, up to a blank line, the first of
// which has a comment that names it.
func TestReferenceIsDocumented(t *testing.T) {
	for _, dir := range []string{"../sdk", "../sdk/sdktest", "../module/client"} {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			if !hasPackageDoc(pkg) {
				t.Errorf("%s: package %s has no package comment", dir, pkg.Name)
			}
			for _, f := range pkg.Files {
				for _, missing := range undocumented(fset, f) {
					t.Errorf("%s: %s has no doc comment", filepath.ToSlash(missing.pos), missing.name)
				}
			}
		}
	}
}

func hasPackageDoc(pkg *ast.Package) bool {
	for _, f := range pkg.Files {
		if f.Doc != nil {
			return true
		}
	}
	return false
}

type undocumentedIdent struct{ pos, name string }

// undocumented lists the exported identifiers of f without a doc comment.
func undocumented(fset *token.FileSet, f *ast.File) []undocumentedIdent {
	var out []undocumentedIdent
	add := func(n ast.Node, name string) {
		p := fset.Position(n.Pos())
		out = append(out, undocumentedIdent{pos: p.Filename + ":" + strconv.Itoa(p.Line), name: name})
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv != nil {
				recv := receiver(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				add(d, recv+"."+d.Name.Name)
				continue
			}
			add(d, d.Name.Name)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					if s.Doc == nil && d.Doc == nil {
						add(s, s.Name.Name)
					}
					var list *ast.FieldList
					switch ty := s.Type.(type) {
					case *ast.StructType:
						list = ty.Fields
					case *ast.InterfaceType:
						list = ty.Methods
					}
					if list != nil {
						for _, field := range undocumentedFields(fset, list) {
							add(field, s.Name.Name+"."+field.Name)
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Doc == nil && s.Comment == nil && d.Doc == nil {
							add(n, n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// undocumentedFields are the exported fields (or methods) of list with
// neither a comment of their own nor a group comment naming them.
func undocumentedFields(fset *token.FileSet, list *ast.FieldList) []*ast.Ident {
	var out []*ast.Ident
	var group *ast.CommentGroup // the doc comment of the group the field is in
	prevLine := -2
	for _, field := range list.List {
		line := fset.Position(field.Pos()).Line
		if field.Doc != nil {
			group = field.Doc
		} else if line != prevLine+1 {
			group = nil // a blank line ends a group
		}
		prevLine = fset.Position(field.End()).Line
		if field.Doc != nil || field.Comment != nil {
			continue
		}
		for _, n := range field.Names {
			if n.IsExported() && (group == nil || !regexp.MustCompile(`\b`+n.Name+`\b`).MatchString(group.Text())) {
				out = append(out, n)
			}
		}
	}
	return out
}

func receiver(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return receiver(e.X)
	case *ast.IndexExpr:
		return receiver(e.X)
	case *ast.Ident:
		return e.Name
	}
	return ""
}
