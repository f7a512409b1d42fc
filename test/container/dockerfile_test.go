//go:build linux

package container

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts, 1-based
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string // the rest of the instruction
}

// stage is one FROM and the instructions under it.
type stage struct {
	from, name string
	insts      []instruction
}

// parseDockerfile reads the instructions of a Dockerfile, grouped by stage.
// It knows what this repository's Dockerfile uses: comments, line
// continuations with a trailing backslash, FROM ... AS name.
func parseDockerfile(t *testing.T, file string) []*stage {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages []*stage
		cur    strings.Builder
		start  int
	)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			s := &stage{}
			fields := strings.Fields(in.args)
			s.from = fields[0]
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return // global build arguments
			}
			t.Fatalf("%s:%d: %s before FROM", file, in.line, in.cmd)
		}
		stages[len(stages)-1].insts = append(stages[len(stages)-1].insts, in)
	}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, also between continuation lines
		}
		if cur.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return stages
}

// shellWords splits a shell command line into words, honouring single and
// double quotes and backslash escapes, and returns "&&" as a word of its own.
// It refuses what it does not understand (pipes, ;, $, backquotes) rather
// than misread it.
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote rune
	)
	end := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch {
			case r == '"':
				quote = 0
			case r == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			case r == '$' || r == '`':
				return nil, fmt.Errorf("expansion in %q is not supported", s)
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			in = true
		case r == ' ' || r == '\t' || r == '\n':
			end()
		case r == '&' && i+1 < len(rs) && rs[i+1] == '&':
			end()
			words = append(words, "&&")
			i++
		case strings.ContainsRune("|;<>()$`", r):
			return nil, fmt.Errorf("shell syntax %q in %q is not supported", r, s)
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	end()
	return words, nil
}

var envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// command is one simple command of a RUN line: NAME=value words, then argv.
type command struct {
	env  []string
	argv []string
	text string // as written, for messages
}

// runCommands returns the simple commands of a RUN instruction (shell form).
func runCommands(t *testing.T, in instruction) []command {
	t.Helper()
	args := in.args
	for strings.HasPrefix(args, "--") { // RUN --mount=... and the like
		_, args, _ = strings.Cut(args, " ")
		args = strings.TrimSpace(args)
	}
	if strings.HasPrefix(args, "[") {
		t.Fatalf("Dockerfile:%d: RUN in exec form is not supported by this test", in.line)
	}
	words, err := shellWords(args)
	if err != nil {
		t.Fatalf("Dockerfile:%d: %v", in.line, err)
	}
	var cmds []command
	cur := command{}
	for i := 0; i <= len(words); i++ {
		if i == len(words) || words[i] == "&&" {
			if len(cur.argv) > 0 {
				cur.text = strings.Join(append(append([]string{}, cur.env...), cur.argv...), " ")
				cmds = append(cmds, cur)
			}
			cur = command{}
			continue
		}
		if len(cur.argv) == 0 && envAssignment.MatchString(words[i]) {
			cur.env = append(cur.env, words[i])
			continue
		}
		cur.argv = append(cur.argv, words[i])
	}
	return cmds
}

// execForm parses a JSON exec-form command such as ["/app/server"].
func execForm(t *testing.T, in instruction, s string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s: want the exec form [\"/path\", ...]: %v", in.line, in.cmd, s, err)
	}
	return argv
}

// envPairs parses ENV a=b c=d (and the legacy ENV a b).
func envPairs(t *testing.T, in instruction) [][2]string {
	t.Helper()
	words, err := shellWords(in.args)
	if err != nil {
		t.Fatalf("Dockerfile:%d: %v", in.line, err)
	}
	if len(words) >= 2 && !strings.Contains(words[0], "=") {
		return [][2]string{{words[0], strings.Join(words[1:], " ")}}
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			t.Fatalf("Dockerfile:%d: ENV %q: want KEY=value", in.line, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// ignoreRule is one line of .dockerignore.
type ignoreRule struct {
	re      *regexp.Regexp
	include bool // a "!" line: re-include what matches
}

// readDockerignore compiles .dockerignore the way Docker reads it: one
// pattern a line, # comments, a leading ! re-includes, paths are relative to
// the context root (a leading / is dropped), * and ? do not cross /, **
// does, and a pattern matching a directory matches everything below it.
// The last matching line decides.
func readDockerignore(t *testing.T, file string) []ignoreRule {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.include = true
			line = strings.TrimSpace(line[1:])
		}
		p := strings.TrimPrefix(path.Clean("/"+line), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			case c == '[' || c == '\\':
				t.Fatalf(".dockerignore: %q: character classes and escapes are not supported by this test", line)
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		r.re = regexp.MustCompile(re.String())
		rules = append(rules, r)
	}
	return rules
}

// ignored reports whether rel (slash-separated, relative to the context
// root) is left out of the build context.
func ignored(rules []ignoreRule, rel string) bool {
	// The path itself and each of its parent directories.
	var candidates []string
	for p := rel; p != "." && p != ""; p = path.Dir(p) {
		candidates = append(candidates, p)
	}
	out := false
	for _, r := range rules {
		for _, c := range candidates {
			if r.re.MatchString(c) {
				out = !r.include
				break
			}
		}
	}
	return out
}

// copyContext copies the files of root that .dockerignore lets into the
// build context to dst, and returns their relative paths.
func copyContext(t *testing.T, root, dst string) map[string]bool {
	t.Helper()
	rules := readDockerignore(t, filepath.Join(root, ".dockerignore"))
	hasInclude := false
	for _, r := range rules {
		hasInclude = hasInclude || r.include
	}
	copied := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ignored(rules, rel) {
			if d.IsDir() && !hasInclude {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			copied[rel] = true
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			copied[rel] = true
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil // sockets and the like
	})
	if err != nil {
		t.Fatalf("copying the build context: %v", err)
	}
	return copied
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestDockerignoreMatcher(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, ".dockerignore")
	os.WriteFile(file, []byte("# c\n.git\n/models\n**/node_modules\n*.log\n**/*.test\ndocs\n!docs/keep.md\n"), 0o644)
	rules := readDockerignore(t, file)
	for rel, want := range map[string]bool{
		".git":                            true,
		".git/HEAD":                       true,
		"models/x.npz":                    true,
		"pkg/models/x.go":                 false,
		"node_modules/a/b.js":             true,
		"test/protocol/node_modules/x":    true,
		"server.log":                      true,
		"sub/server.log":                  false,
		"api.test":                        true,
		"pkg/api/api.test":                true,
		"test/protocol/errors.test.mjs":   false,
		"docs/API.md":                     true,
		"docs/keep.md":                    false,
		"web/vendor/README.md":            false,
		"data/train-images-idx3-ubyte.gz": false,
	} {
		if got := ignored(rules, rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestShellWords(t *testing.T) {
	got, err := shellWords(`CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/server ./cmd/server && mkdir -p '/out/a b'`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/server", "./cmd/server", "&&", "mkdir", "-p", "/out/a b"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{`go build $FLAGS`, `a | b`, `a; b`, `"open`} {
		if _, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q) accepted it", bad)
		}
	}
}
