package postgres

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/pgtest"
)

func TestParseURL(t *testing.T) {
	for _, good := range []string{
		"postgres://u:secret@db.example:5432/nn?sslmode=require",
		"postgresql://u@127.0.0.1/nn",
		"postgres:///nn?host=/var/run/postgresql",
	} {
		if got, err := ParseURL(good); err != nil || got != good {
			t.Errorf("ParseURL(%q) = %q, %v", good, got, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "DATABASE_URL is empty"},
		{"mysql://u:secret@db/nn", `DATABASE_URL is not a postgres:// URL (its scheme is "mysql")`},
		{"host=db user=u password=secret", "DATABASE_URL is not a postgres:// URL"},
		{"db.example:5432/nn", "DATABASE_URL is not a postgres:// URL"},
		{"postgres://u:secret@db.example:5432/nn\x7f", "DATABASE_URL is not a postgres:// URL"},
		{"postgres://u:secret@db.example:5432/nn?sslmode=sometimes", "DATABASE_URL postgres://u:xxxxx@db.example:5432/nn?sslmode=sometimes is not valid"},
		{"postgres://u:secret@db.example:5432/nn?connect_timeout=soon", "is not valid"},
	} {
		_, err := ParseURL(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q): %v, want an error with %q", tc.in, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q): the error shows the password: %v", tc.in, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@db:5432/nn?sslmode=disable": "postgres://u:xxxxx@db:5432/nn?sslmode=disable",
		"postgres://u@db/nn":                             "postgres://u@db/nn",
		"postgres://db/nn?password=secret&sslmode=off":   "postgres://db/nn?password=xxxxx&sslmode=off",
		"postgres://u:p%40ss@db/nn":                      "postgres://u:xxxxx@db/nn",
		"postgres://u:secret@db/nn\x7f":                  "(a URL that does not parse, not shown)",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConnect(t *testing.T) {
	url := pgtest.NewDatabase(t)
	pool, err := Connect(t.Context(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	password := pgtest.Shared(t).Password()

	// Errors name DATABASE_URL, redacted, and never show the password.
	check := func(t *testing.T, url string, took time.Duration, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatal("connected")
		}
		msg := err.Error()
		if !strings.Contains(msg, "DATABASE_URL postgres://postgres:xxxxx@") || !strings.Contains(msg, want) {
			t.Errorf("error %q: want DATABASE_URL, redacted, and %q", msg, want)
		}
		if strings.Contains(msg, password) {
			t.Errorf("the error shows the password: %q", msg)
		}
		t.Logf("%v: %s", took.Round(time.Millisecond), msg)
	}

	t.Run("WrongPassword", func(t *testing.T) {
		bad := strings.Replace(url, password, password+"x", 1)
		start := time.Now()
		_, err := Connect(t.Context(), bad, 0)
		check(t, bad, time.Since(start), err, "password authentication failed")
	})
	t.Run("NothingListening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		bad := strings.Replace(url, hostPort(t, url), net.JoinHostPort("127.0.0.1", itoa(port)), 1)
		start := time.Now()
		_, err = Connect(t.Context(), bad, 0)
		check(t, bad, time.Since(start), err, "connection refused")
	})
	t.Run("ServerNeverAnswers", func(t *testing.T) {
		// A listener that accepts and says nothing: without a timeout,
		// Connect would wait for ever.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		}()
		bad := strings.Replace(url, hostPort(t, url), ln.Addr().String(), 1)
		start := time.Now()
		_, err = Connect(t.Context(), bad, 300*time.Millisecond)
		took := time.Since(start)
		check(t, bad, took, err, "at most 300ms")
		if took > 5*time.Second {
			t.Errorf("Connect took %v with a timeout of 300ms", took)
		}
	})
	t.Run("NotAURL", func(t *testing.T) {
		_, err := Connect(context.Background(), "host=127.0.0.1 password="+password, 0)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL is not a postgres:// URL") || strings.Contains(err.Error(), password) {
			t.Errorf("Connect: %v", err)
		}
	})
}
