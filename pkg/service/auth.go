package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Who may change what, in this one file: the caller's credentials (put in a
// request's context by the API layer, which only reads the headers), the
// owner tokens of networks (handed out once, only their SHA-256 kept), and
// the Policy that decides. The Policy is plain Go: no HTTP, no state but
// the settings, so every rule is tested without a server (auth_test.go).

// MinAdminTokenLength is the shortest ADMIN_TOKEN or METRICS_TOKEN
// accepted: a shorter one could be guessed.
const MinAdminTokenLength = 16

// Credentials are the secrets a caller presented: Bearer, from
// "Authorization: Bearer …", may be the admin token or a network's owner
// token; Owner, from "X-Owner-Token", is an owner token. Empty: none.
type Credentials struct {
	Bearer string
	Owner  string
}

// present reports whether any credential was given.
func (c Credentials) present() bool { return c.Bearer != "" || c.Owner != "" }

// credentialsKey is the context key of the caller's Credentials.
type credentialsKey struct{}

// WithCredentials returns ctx carrying the caller's credentials.
func WithCredentials(ctx context.Context, c Credentials) context.Context {
	return context.WithValue(ctx, credentialsKey{}, c)
}

// CredentialsOf returns the credentials WithCredentials put in ctx, or none.
func CredentialsOf(ctx context.Context) Credentials {
	c, _ := ctx.Value(credentialsKey{}).(Credentials)
	return c
}

// ownerTokenBytes is the randomness of an owner token: 256 bits, which no
// one guesses, so that one SHA-256 of it (unsalted, fast) is enough to keep.
const ownerTokenBytes = 32

// newOwnerToken returns a new owner token (43 characters of base64url, 32
// random bytes) and the hash to keep of it (OwnerHash).
func newOwnerToken() (token, hash string, err error) {
	b := make([]byte, ownerTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("draw an owner token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, OwnerHash(token), nil
}

// OwnerHash is what is kept of an owner token: the SHA-256 of its text, in
// lowercase hex (64 characters).
func OwnerHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// matchesHash reports, in time independent of where they differ, whether
// token's hash is hash (hex). An empty token or hash matches nothing.
func matchesHash(token, hash string) bool {
	if token == "" || hash == "" {
		return false
	}
	want, err := hex.DecodeString(hash)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

// Role is what a caller is to one network, as Policy.Role finds it.
type Role string

// Roles.
const (
	RoleAdmin  Role = "admin"  // the admin token
	RoleOwner  Role = "owner"  // the network's owner token
	RoleAnyone Role = "anyone" // ownership is off: anyone may change it
	RoleNone   Role = ""       // may not change it
)

// Policy decides who may do what. The zero value is the default: no admin
// token, ownership off, everything open, as the service this one replaces
// was. It is safe for concurrent use (it never changes).
type Policy struct {
	admin     [sha256.Size]byte // SHA-256 of the admin token; zero when there is none
	hasAdmin  bool
	metrics   [sha256.Size]byte // SHA-256 of the metrics token
	hasMetric bool
	// ownership: changing a network needs its owner token or the admin token.
	ownership bool
}

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// AdminToken, if set, is needed for what affects every network (delete
	// them all), and opens every network. At least MinAdminTokenLength.
	AdminToken string
	// MetricsToken, if set, is needed for GET /metrics (the admin token
	// opens it too). At least MinAdminTokenLength.
	MetricsToken string
	// Ownership: changing a network (delete, train, cancel its jobs, label,
	// restore a snapshot) needs its owner token or the admin token.
	// Networks without an owner (made before owner tokens existed) are the
	// admin's.
	Ownership bool
}

// NewPolicy checks c and returns its Policy. The errors never quote a token.
func NewPolicy(c PolicyConfig) (*Policy, error) {
	p := &Policy{ownership: c.Ownership}
	if c.AdminToken != "" {
		if len(c.AdminToken) < MinAdminTokenLength {
			return nil, fmt.Errorf("ADMIN_TOKEN is %d characters long: it must have at least %d", len(c.AdminToken), MinAdminTokenLength)
		}
		p.admin, p.hasAdmin = sha256.Sum256([]byte(c.AdminToken)), true
	}
	if c.MetricsToken != "" {
		if len(c.MetricsToken) < MinAdminTokenLength {
			return nil, fmt.Errorf("METRICS_TOKEN is %d characters long: it must have at least %d", len(c.MetricsToken), MinAdminTokenLength)
		}
		p.metrics, p.hasMetric = sha256.Sum256([]byte(c.MetricsToken)), true
	}
	return p, nil
}

// Ownership reports whether changing a network needs its owner token.
func (p *Policy) Ownership() bool { return p != nil && p.ownership }

// isAdmin reports, in constant time, whether token is the admin token.
func (p *Policy) isAdmin(token string) bool {
	if p == nil || !p.hasAdmin || token == "" {
		return false
	}
	// Comparing hashes compares equal lengths: the time tells nothing of
	// the token's length either.
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], p.admin[:]) == 1
}

// Errors of the Policy. Unauthenticated: no credentials were given (the API
// answers 401 and asks for a Bearer token); Forbidden: those given do not
// allow it (403).
var (
	errAdminNeeded = &Error{Code: Unauthenticated,
		Message: "this affects every network: it needs the admin token (Authorization: Bearer <ADMIN_TOKEN>)"}
	errAdminWrong  = &Error{Code: Forbidden, Message: "the token given is not the admin token"}
	errAdminNone   = &Error{Code: Forbidden, Message: "this affects every network, and this server has no admin token (ADMIN_TOKEN) to allow it while ownership is on"}
	errOwnerNeeded = &Error{Code: Unauthenticated,
		Message: "changing this network needs its owner token (X-Owner-Token or Authorization: Bearer) or the admin token"}
	errOwnerWrong   = &Error{Code: Forbidden, Message: "the token given is neither this network's owner token nor the admin token"}
	errMetricsOwned = &Error{Code: Unauthenticated, Message: "the metrics need the metrics token (Authorization: Bearer <METRICS_TOKEN>)"}
	errMetricsWrong = &Error{Code: Forbidden, Message: "the token given is not the metrics token"}
)

// Admin allows what affects every network (deleting them all): anyone
// while there is no admin token and ownership is off; else only the admin
// token. With ownership on and no admin token, no one.
func (p *Policy) Admin(c Credentials) error {
	switch {
	case p == nil || !p.hasAdmin && !p.ownership:
		return nil
	case !p.hasAdmin:
		return errAdminNone
	case p.isAdmin(c.Bearer):
		return nil
	case c.Bearer == "":
		return errAdminNeeded
	}
	return errAdminWrong
}

// Metrics allows reading the metrics: anyone without a metrics token, else
// the metrics token or the admin token.
func (p *Policy) Metrics(c Credentials) error {
	if p == nil || !p.hasMetric {
		return nil
	}
	got := sha256.Sum256([]byte(c.Bearer))
	if c.Bearer != "" && (subtle.ConstantTimeCompare(got[:], p.metrics[:]) == 1 || p.isAdmin(c.Bearer)) {
		return nil
	}
	if c.Bearer == "" {
		return errMetricsOwned
	}
	return errMetricsWrong
}

// Role says what the caller is to a network whose owner hash is ownerHash
// ("" for a network without an owner): RoleNone when it may not change it.
func (p *Policy) Role(c Credentials, ownerHash string) Role {
	switch {
	case p.isAdmin(c.Bearer):
		return RoleAdmin
	case matchesHash(c.Bearer, ownerHash) || matchesHash(c.Owner, ownerHash):
		return RoleOwner
	case !p.Ownership():
		return RoleAnyone
	}
	return RoleNone
}

// Change allows changing a network (deleting it, training it, labelling
// it, restoring a snapshot, cancelling its jobs) whose owner hash is
// ownerHash: anyone while ownership is off; else its owner token or the
// admin token.
func (p *Policy) Change(c Credentials, ownerHash string) error {
	if p.Role(c, ownerHash) != RoleNone {
		return nil
	}
	if !c.present() {
		return errOwnerNeeded
	}
	return errOwnerWrong
}

// authorize is Policy.Change for the caller of ctx and the network of rec.
func (s *Service) authorize(ctx context.Context, rec NetworkRecord) error {
	return s.policy.Change(CredentialsOf(ctx), rec.OwnerHash)
}

// Policy returns the service's access policy (the API asks it about the
// metrics).
func (s *Service) Policy() *Policy { return s.policy }

// Access is what the caller of a request may do to one network.
type Access struct {
	NetworkID string
	Ownership bool // changing networks needs an owner token or the admin token
	Role      Role // RoleNone: the caller may not change it
}

// Access tells the caller (its credentials in ctx) whether it may change a
// network, and as what: a page checks a pasted owner token with it. It is a
// read: it changes nothing and refuses no one.
func (s *Service) Access(ctx context.Context, id string) (Access, error) {
	rec, err := s.catalog.Get(ctx, id)
	if err != nil {
		return Access{}, stateError(err)
	}
	return Access{NetworkID: id, Ownership: s.policy.Ownership(), Role: s.policy.Role(CredentialsOf(ctx), rec.OwnerHash)}, nil
}
