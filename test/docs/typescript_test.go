package docs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// Markers, HTML comments on the line just above a ```ts fence (invisible
// on GitHub):
//
//   - <!-- ts: no-check: why --> leaves out a block that is deliberately
//     not a whole file, e.g. "one method of the service above";
//   - <!-- ts: preamble: code --> checks the block with code (one line,
//     such as the imports a fragment leaves out) written before it.
var (
	noCheck  = regexp.MustCompile(`^<!--\s*ts:\s*no-check\s*:\s*(\S.*?)\s*-->$`)
	preamble = regexp.MustCompile(`^<!--\s*ts:\s*preamble\s*:\s*(\S.*?)\s*-->$`)
)

// compilerOptions are those of a project made by Angular 20's `ng new`
// (strict, with its extra checks and its decorators), checking only:
// snippets must compile where users paste them. Unlike ng new's, the
// declaration files are checked too (skipLibCheck off): stubs/angular.d.ts
// is ours.
var compilerOptions = map[string]any{
	"target":                             "ES2022",
	"module":                             "preserve",
	"moduleResolution":                   "bundler",
	"strict":                             true,
	"noImplicitOverride":                 true,
	"noPropertyAccessFromIndexSignature": true,
	"noImplicitReturns":                  true,
	"noFallthroughCasesInSwitch":         true,
	"isolatedModules":                    true,
	"experimentalDecorators":             true,
	"skipLibCheck":                       false,
	"noEmit":                             true,
	"types":                              []string{},
}

// tsFileName is the file a snippet names in its first line
// ("// training-events.service.ts — …"), so that another snippet can import
// it as the docs do.
var tsFileName = regexp.MustCompile(`^//\s*([A-Za-z0-9_.-]+\.ts)\b`)

// tsDiagnostic is one line of tsc's output: file(line,col): error TSnnnn: …
var tsDiagnostic = regexp.MustCompile(`^(\S+?\.ts)\((\d+),(\d+)\): (.*)$`)

// TestTypeScriptSnippets type-checks every ```ts (or ```typescript) block
// of docs/*.md with
// tsc --noEmit, against the rxjs, socket.io-client and typescript versions
// of package-lock.json and the Angular declarations of stubs/angular.d.ts.
// A snippet that names its file in its first line ("// x.service.ts — …")
// is written under that name, so later snippets can import it as the docs
// do; each is made a module. Blocks may be marked (noCheck, preamble).
// Errors are reported at their line in the markdown.
func TestTypeScriptSnippets(t *testing.T) {
	e2e(t)
	node := testenv.Tool(t, "node", "Node.js 20+ and npm; go test -short skips this suite")
	root := testenv.ModuleRoot(t)
	dir := filepath.Join(root, "test", "docs")
	testenv.NpmCI(t, dir, "typescript")

	mds, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(tmp, "node_modules")); err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(dir, "stubs", "angular.d.ts")}
	origin := map[string]block{} // file name → the block written there
	offset := map[string]int{}   // file name → lines written before the block
	for _, md := range mds {
		bs := slices.Concat(docBlocks(t, filepath.Base(md), "ts"), docBlocks(t, filepath.Base(md), "typescript"))
		for _, b := range bs {
			if strings.Contains(b.Marker, "no-check") {
				m := noCheck.FindStringSubmatch(b.Marker)
				if m == nil {
					t.Errorf("%v: %q: write the reason, <!-- ts: no-check: why -->", b, b.Marker)
					continue
				}
				t.Logf("%v: not checked: %s", b, m[1])
				continue
			}
			name := fmt.Sprintf("%s-%d.ts", strings.TrimSuffix(filepath.Base(b.File), ".md"), b.Line)
			if m := tsFileName.FindStringSubmatch(b.Code); m != nil {
				name = m[1]
			}
			if prev, dup := origin[name]; dup {
				t.Fatalf("%v and %v both name %s", prev, b, name)
			}
			origin[name] = b
			code := b.Code
			if m := preamble.FindStringSubmatch(b.Marker); m != nil {
				code = m[1] + "\n" + code
				offset[name] = 1
			} else if b.Marker != "" && strings.Contains(b.Marker, "ts:") {
				t.Errorf("%v: %q: unknown marker; want <!-- ts: no-check: why --> or <!-- ts: preamble: code -->", b, b.Marker)
			}
			// Made a module (isolatedModules wants every file to be one):
			// on a line of its own after the code, so lines keep their numbers.
			if err := os.WriteFile(filepath.Join(tmp, name), []byte(code+"export {};\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, name)
			t.Logf("%v: checking as %s", b, name)
		}
	}
	if len(origin) == 0 {
		t.Fatal("no ```ts block found in docs/*.md: the extractor is broken")
	}
	data, err := json.MarshalIndent(map[string]any{"compilerOptions": compilerOptions, "files": files}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "tsconfig.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	version, err := exec.CommandContext(ctx, node, tsc, "--version").Output()
	if err != nil {
		t.Fatalf("tsc --version: %v", err)
	}
	t.Logf("%s", strings.TrimSpace(string(version)))
	cmd := exec.CommandContext(ctx, node, tsc, "-p", "tsconfig.json", "--pretty", "false")
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	// Point every error at the markdown; tsc indents a message's
	// continuation lines.
	var msgs []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		m := tsDiagnostic.FindStringSubmatch(line)
		switch {
		case m != nil:
			if b, ok := origin[filepath.Base(m[1])]; ok {
				n, _ := strconv.Atoi(m[2])
				line = fmt.Sprintf("%s:%d:%s: %s", b.File, b.Line+n-1-offset[filepath.Base(m[1])], m[3], m[4])
			}
			msgs = append(msgs, line)
		case len(msgs) > 0 && strings.HasPrefix(line, " "):
			msgs[len(msgs)-1] += "\n" + line
		default:
			msgs = append(msgs, line)
		}
	}
	t.Errorf("tsc: %v; the docs' TypeScript does not compile:\n%s", err, strings.Join(msgs, "\n"))
}
