package scale

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// TestStartupErrors: a replica that cannot start says why, and exits 1,
// without the database password in what it says.
func TestStartupErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server; skipped with -short")
	}
	bin := testenv.ServerBinary(t)
	const password = "Sup3r-s3cret-pw"
	unreachable := fmt.Sprintf("postgres://nn:%s@127.0.0.1:%d/nn?sslmode=disable", password, testenv.FreePort(t))
	for _, tc := range []struct {
		name  string
		env   []string
		want  []string // in the output
		fast  time.Duration
		never string // never in the output
	}{
		{"postgres_unreachable", []string{"DATABASE_URL=" + unreachable},
			[]string{"DATABASE_URL", "127.0.0.1", "xxxxx"}, 15 * time.Second, password},
		{"database_url_not_a_url", []string{"DATABASE_URL=not-a-url"},
			[]string{"DATABASE_URL", "postgres://"}, 5 * time.Second, ""},
		{"database_url_with_password_bad_option", []string{"DATABASE_URL=postgres://nn:" + password + "@127.0.0.1:1/nn?sslmode=bogus"},
			[]string{"DATABASE_URL"}, 5 * time.Second, password},
		{"s3_endpoint_bad", []string{"S3_ENDPOINT=::bad", "S3_BUCKET=models"},
			[]string{"S3_ENDPOINT", "::bad"}, 5 * time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append(baseEnv(), append([]string{"PORT=" + fmt.Sprint(testenv.FreePort(t)), "MODELS_DIR=" + t.TempDir()}, tc.env...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(tc.fast + 10*time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("still running after %v; output:\n%s", tc.fast+10*time.Second, out.String())
			}
			took := time.Since(start)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if took > tc.fast {
				t.Errorf("took %v to fail, want under %v", took, tc.fast)
			}
			text := out.String()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("the output does not mention %q:\n%s", w, text)
				}
			}
			if tc.never != "" && strings.Contains(text, tc.never) {
				t.Errorf("the output shows the password:\n%s", text)
			}
			t.Logf("exit 1 after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(text))
		})
	}
}
