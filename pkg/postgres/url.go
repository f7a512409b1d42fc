// Package postgres is the scaled mode's shared state: several replicas of
// the server behind a load balancer share one PostgreSQL database.
//
// Connect opens the pool from DATABASE_URL, Migrate brings the schema up to
// date (River's tables and ours), and Relay carries training events from
// the replica running a job to the Socket.IO clients of every replica.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// redacted replaces passwords in what is logged.
const redacted = "xxxxx"

// ParseURL checks that s, the value of DATABASE_URL, is a postgres:// or
// postgresql:// URL that pgx accepts, and returns it. Its errors never hold
// the password.
func ParseURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("DATABASE_URL is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the whole string, password included.
		return "", errors.New("DATABASE_URL is not a postgres:// URL: it does not parse as a URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		if u.Scheme == "" {
			return "", errors.New("DATABASE_URL is not a postgres:// URL (it has no scheme)")
		}
		return "", fmt.Errorf("DATABASE_URL is not a postgres:// URL (its scheme is %q)", u.Scheme)
	}
	if _, err := pgxpool.ParseConfig(s); err != nil {
		return "", fmt.Errorf("DATABASE_URL %s is not valid: %s", Redact(s), scrub(err.Error(), s))
	}
	return s, nil
}

// Redact returns s, a postgres:// URL, with its password (in the user info,
// or a password parameter) replaced by xxxxx, for logs and errors. A string
// that does not parse as a URL is not shown at all.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse, not shown)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redacted)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// scrub removes from msg every password s holds, in case a library's
// message quotes the URL: pgx redacts its own, but only as a best effort.
func scrub(msg, s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(details not shown: they may hold the password)"
	}
	var pws []string
	if pw, ok := u.User.Password(); ok {
		pws = append(pws, pw, url.QueryEscape(pw), url.PathEscape(pw))
	}
	if pw := u.Query().Get("password"); pw != "" {
		pws = append(pws, pw, url.QueryEscape(pw))
	}
	for _, pw := range pws {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, redacted)
		}
	}
	return msg
}

// Connect opens a pool on DATABASE_URL and checks that Postgres answers
// within timeout, so that a replica started without its database fails at
// once with an error naming the (redacted) URL. timeout (DB_TIMEOUT; 0:
// DefaultTimeout) also bounds each connection the pool makes (pgx's
// ConnectTimeout) and, a second more, each statement on the server
// (statement_timeout), unless DATABASE_URL sets connect_timeout or
// statement_timeout itself: see Deadlines in timeout.go.
func Connect(ctx context.Context, databaseURL string, timeout time.Duration) (*pgxpool.Pool, error) {
	s, err := ParseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL %s is not valid: %s", Redact(s), scrub(err.Error(), s))
	}
	timeout = orDefault(timeout)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !set &&
		!strings.Contains(cfg.ConnConfig.RuntimeParams["options"], "statement_timeout") {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms(statementTimeout(timeout))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to Postgres at DATABASE_URL %s: %s", Redact(s), scrub(err.Error(), s))
	}
	wait := max(timeout, cfg.ConnConfig.ConnectTimeout)
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot connect to Postgres at DATABASE_URL %s (waiting at most %v): %w", Redact(s), wait, scrubbed{err, s})
	}
	return pool, nil
}

// scrubbed is an error whose message is scrubbed of a URL's passwords, but
// which still unwraps to the original, so that callers can test it.
type scrubbed struct {
	err error
	url string
}

func (e scrubbed) Error() string { return scrub(e.err.Error(), e.url) }
func (e scrubbed) Unwrap() error { return e.err }
