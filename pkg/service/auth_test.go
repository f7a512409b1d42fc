package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/modelfile"
)

const (
	testAdmin   = "admin-token-0123456789"
	testMetrics = "metrics-token-0123456789"
)

func mustPolicy(t *testing.T, c PolicyConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicy is the whole rule, without HTTP: for each switch on and off,
// what each caller may do. "" is allowed; Unauthenticated (no credentials,
// 401) and Forbidden (wrong ones, 403) are refusals.
func TestPolicy(t *testing.T) {
	owner := "the-owner-token"
	hash := OwnerHash(owner)
	open := PolicyConfig{}
	admin := PolicyConfig{AdminToken: testAdmin}
	owned := PolicyConfig{Ownership: true}
	both := PolicyConfig{AdminToken: testAdmin, Ownership: true}
	metrics := PolicyConfig{MetricsToken: testMetrics, AdminToken: testAdmin}
	none := Credentials{}
	for _, tc := range []struct {
		name   string
		cfg    PolicyConfig
		op     string // "admin", "change" (of a network owned by hash), "legacy" (a network without owner), "metrics"
		creds  Credentials
		want   Code // "": allowed
		wantAs Role // for change and legacy
	}{
		{"open: delete all", open, "admin", none, "", ""},
		{"open: change", open, "change", none, "", RoleAnyone},
		{"open: change with a wrong token", open, "change", Credentials{Bearer: "whatever-it-is"}, "", RoleAnyone},
		{"open: the owner is told so", open, "change", Credentials{Owner: owner}, "", RoleOwner},
		{"open: metrics", open, "metrics", none, "", ""},

		{"admin: delete all without a token", admin, "admin", none, Unauthenticated, ""},
		{"admin: delete all with an owner header only", admin, "admin", Credentials{Owner: owner}, Unauthenticated, ""},
		{"admin: delete all with a wrong token", admin, "admin", Credentials{Bearer: testAdmin + "x"}, Forbidden, ""},
		{"admin: delete all with a prefix of the token", admin, "admin", Credentials{Bearer: testAdmin[:16]}, Forbidden, ""},
		{"admin: delete all with the token", admin, "admin", Credentials{Bearer: testAdmin}, "", ""},
		{"admin: change stays open", admin, "change", none, "", RoleAnyone},
		{"admin: the admin is told so", admin, "change", Credentials{Bearer: testAdmin}, "", RoleAdmin},

		{"ownership: change without a token", owned, "change", none, Unauthenticated, RoleNone},
		{"ownership: change with a wrong token", owned, "change", Credentials{Owner: "not-the-owner"}, Forbidden, RoleNone},
		{"ownership: change with the hash itself", owned, "change", Credentials{Bearer: hash}, Forbidden, RoleNone},
		{"ownership: change with X-Owner-Token", owned, "change", Credentials{Owner: owner}, "", RoleOwner},
		{"ownership: change with Bearer", owned, "change", Credentials{Bearer: owner}, "", RoleOwner},
		{"ownership: one right of two", owned, "change", Credentials{Bearer: "wrong", Owner: owner}, "", RoleOwner},
		{"ownership: a network without owner, no token", owned, "legacy", none, Unauthenticated, RoleNone},
		{"ownership: a network without owner, a token", owned, "legacy", Credentials{Owner: owner}, Forbidden, RoleNone},
		{"ownership without admin: delete all is off", owned, "admin", Credentials{Bearer: testAdmin}, Forbidden, ""},
		{"ownership without admin: delete all is off, no token", owned, "admin", none, Forbidden, ""},

		{"both: the admin changes any network", both, "change", Credentials{Bearer: testAdmin}, "", RoleAdmin},
		{"both: the admin has the networks without owner", both, "legacy", Credentials{Bearer: testAdmin}, "", RoleAdmin},
		{"both: the admin token in X-Owner-Token is not the admin's", both, "legacy", Credentials{Owner: testAdmin}, Forbidden, RoleNone},
		{"both: the owner changes its own", both, "change", Credentials{Owner: owner}, "", RoleOwner},
		{"both: an owner token does not delete all", both, "admin", Credentials{Bearer: owner}, Forbidden, ""},
		{"both: delete all", both, "admin", Credentials{Bearer: testAdmin}, "", ""},

		{"metrics: no token", metrics, "metrics", none, Unauthenticated, ""},
		{"metrics: a wrong token", metrics, "metrics", Credentials{Bearer: "wrong-token-of-some-length"}, Forbidden, ""},
		{"metrics: the metrics token", metrics, "metrics", Credentials{Bearer: testMetrics}, "", ""},
		{"metrics: the admin token", metrics, "metrics", Credentials{Bearer: testAdmin}, "", ""},
		{"metrics: the metrics token does not delete all", metrics, "admin", Credentials{Bearer: testMetrics}, Forbidden, ""},
		{"admin only: metrics stay open", admin, "metrics", none, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, tc.cfg)
			var err error
			switch tc.op {
			case "admin":
				err = p.Admin(tc.creds)
			case "metrics":
				err = p.Metrics(tc.creds)
			case "change", "legacy":
				h := hash
				if tc.op == "legacy" {
					h = ""
				}
				err = p.Change(tc.creds, h)
				if got := p.Role(tc.creds, h); got != tc.wantAs {
					t.Errorf("Role = %q, want %q", got, tc.wantAs)
				}
			}
			if got := codeOf(err); got != tc.want {
				t.Errorf("%v (code %q), want code %q", err, got, tc.want)
			}
			for _, secret := range []string{testAdmin, testMetrics, owner, hash} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("the error %q quotes a secret", err)
				}
			}
		})
	}
}

// codeOf is err's code, "" for nil.
func codeOf(err error) Code {
	if err == nil {
		return ""
	}
	return ErrorCode(err)
}

// TestNewPolicyRefusesShortTokens: an admin or metrics token under 16
// characters stops the server, and the error does not quote it.
func TestNewPolicyRefusesShortTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  PolicyConfig
		ok   bool
	}{
		{"none", PolicyConfig{}, true},
		{"16 characters", PolicyConfig{AdminToken: "0123456789abcdef"}, true},
		{"15 characters", PolicyConfig{AdminToken: "0123456789abcde"}, false},
		{"a short metrics token", PolicyConfig{MetricsToken: "short-token"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPolicy(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("NewPolicy: %v, want ok %v", err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), tc.cfg.AdminToken+"\"") || tc.cfg.MetricsToken != "" && strings.Contains(err.Error(), tc.cfg.MetricsToken)) {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

// TestOwnerTokens: every network made gets an owner token, different each
// time, 32 random bytes; only its hash is kept, in the model file and the
// catalog, and never the token itself.
func TestOwnerTokens(t *testing.T) {
	f := newPolicyFixture(t, newFaultyStore(t), PolicyConfig{})
	seen := map[string]bool{}
	for range 3 {
		n := f.createOwned(t)
		if len(n.OwnerToken) != 43 || seen[n.OwnerToken] {
			t.Fatalf("owner token %q: want 43 characters (32 bytes of base64url), new each time", n.OwnerToken)
		}
		seen[n.OwnerToken] = true
		saved, _ := f.store.get(n.ID)
		rec, err := f.svc.catalog.Get(context.Background(), n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if saved.meta.OwnerHash != OwnerHash(n.OwnerToken) || rec.OwnerHash != saved.meta.OwnerHash {
			t.Errorf("hash in the file %q, in the catalog %q; want %q", saved.meta.OwnerHash, rec.OwnerHash, OwnerHash(n.OwnerToken))
		}
		for _, info := range f.list(t) {
			if info.OwnerToken != "" {
				t.Errorf("List gives out an owner token")
			}
		}
	}
}

// TestOwnershipInTheService: with ownership on, delete, train and cancel
// need the network's owner token or the admin token; reading stays open;
// delete all needs the admin token; a network saved without an owner is
// the admin's; the token still works after a restart (the hash is saved).
func TestOwnershipInTheService(t *testing.T) {
	st := newFaultyStore(t)
	legacy := uuid.NewString()
	st.put(t, modelfile.Meta{ID: legacy, Sizes: []int{784, 1, 10}}, constantNet(t, 1))
	cfg := PolicyConfig{AdminToken: testAdmin, Ownership: true}
	f := newPolicyFixture(t, st, cfg)
	mine := f.createOwned(t)
	theirs := f.createOwned(t)
	as := func(c Credentials) context.Context { return WithCredentials(context.Background(), c) }
	anon, me, admin := as(Credentials{}), as(Credentials{Owner: mine.OwnerToken}), as(Credentials{Bearer: testAdmin})
	seed := uint64(1)
	params := TrainParams{Epochs: 1, MiniBatch: 10, LearningRate: 3, Cost: CostQuadratic, Seed: &seed}

	for _, tc := range []struct {
		name string
		do   func() error
		want Code
	}{
		{"train without a token", func() error { _, err := f.svc.Train(anon, mine.ID, params); return err }, Unauthenticated},
		{"train someone else's", func() error { _, err := f.svc.Train(me, theirs.ID, params); return err }, Forbidden},
		{"delete without a token", func() error { _, err := f.svc.Delete(anon, mine.ID); return err }, Unauthenticated},
		{"delete someone else's", func() error { _, err := f.svc.Delete(me, theirs.ID); return err }, Forbidden},
		{"delete one without owner", func() error { _, err := f.svc.Delete(me, legacy); return err }, Forbidden},
		{"delete all as an owner (X-Owner-Token is no admin credential)", func() error { _, err := f.svc.DeleteAll(me); return err }, Unauthenticated},
		{"delete all with an owner token as Bearer", func() error { _, err := f.svc.DeleteAll(as(Credentials{Bearer: mine.OwnerToken})); return err }, Forbidden},
		{"delete all without a token", func() error { _, err := f.svc.DeleteAll(anon); return err }, Unauthenticated},
		{"read someone else's history", func() error { _, err := f.svc.History(me, theirs.ID); return err }, ""},
		{"list", func() error { _, err := f.svc.List(anon); return err }, ""},
	} {
		if got := codeOf(tc.do()); got != tc.want {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.want)
		}
	}
	if len(f.list(t)) != 3 {
		t.Fatalf("%d networks after the refusals, want 3", len(f.list(t)))
	}

	// The owner trains its network; someone else cannot cancel the job.
	j, err := f.svc.Train(me, mine.ID, TrainParams{Epochs: 1000, MiniBatch: 10, LearningRate: 3, Cost: CostQuadratic, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Cancel(anon, j.ID); codeOf(err) != Unauthenticated {
		t.Errorf("cancel without a token: %v", err)
	}
	if _, err := f.svc.Cancel(as(Credentials{Owner: theirs.OwnerToken}), j.ID); codeOf(err) != Forbidden {
		t.Errorf("cancel by another owner: %v", err)
	}
	if _, err := f.svc.Cancel(me, j.ID); err != nil {
		t.Errorf("cancel by the owner: %v", err)
	}
	f.events.waitEnd(t, j.ID)
	// Access tells each caller what it is to the network.
	for _, tc := range []struct {
		ctx  context.Context
		want Role
	}{{anon, RoleNone}, {me, RoleOwner}, {admin, RoleAdmin}} {
		a, err := f.svc.Access(tc.ctx, mine.ID)
		if err != nil || a.Role != tc.want || !a.Ownership {
			t.Errorf("Access: %+v, %v; want role %q", a, err, tc.want)
		}
	}

	// A restart on the same store: the hash was saved, the token still works.
	f2 := newPolicyFixture(t, st, cfg)
	if _, err := f2.svc.Delete(anon, mine.ID); codeOf(err) != Unauthenticated {
		t.Errorf("after a restart, delete without a token: %v", err)
	}
	if _, err := f2.svc.Delete(me, mine.ID); err != nil {
		t.Errorf("after a restart, delete by the owner: %v", err)
	}
	if _, err := f2.svc.Delete(admin, legacy); err != nil {
		t.Errorf("the admin deletes a network without owner: %v", err)
	}
	out, err := f2.svc.DeleteAll(admin)
	if err != nil || len(out.Deleted) != 1 {
		t.Errorf("delete all as the admin: %+v, %v", out, err)
	}
}

// TestOwnershipOffChangesNothing: with the default policy every change is
// open, credentials or not, right or wrong.
func TestOwnershipOffChangesNothing(t *testing.T) {
	f := newPolicyFixture(t, newFaultyStore(t), PolicyConfig{})
	a, b := f.createOwned(t), f.createOwned(t)
	ctx := WithCredentials(context.Background(), Credentials{Bearer: "not-a-token-at-all", Owner: b.OwnerToken})
	if _, err := f.svc.Train(ctx, a.ID, TrainParams{Epochs: 1, MiniBatch: 10, LearningRate: 3, Cost: CostQuadratic}); err != nil {
		t.Errorf("train: %v", err)
	}
	if _, err := f.svc.Delete(context.Background(), a.ID); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := f.svc.DeleteAll(context.Background()); err != nil {
		t.Errorf("delete all: %v", err)
	}
}

func newPolicyFixture(t *testing.T, st *faultyStore, c PolicyConfig) *fixture {
	t.Helper()
	rec := newRecorder()
	svc, err := New(context.Background(), Config{Data: loadMNIST, Store: st, Events: rec, Workers: 1,
		Logger: testLogger(t), Policy: mustPolicy(t, c)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return &fixture{svc: svc, store: st, events: rec}
}

// createOwned creates a [784, 10] network and returns what Create said.
func (f *fixture) createOwned(t *testing.T) NetworkInfo {
	t.Helper()
	arch, err := f.svc.Limits().NewArchitecture([]int{784, 10})
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.svc.Create(context.Background(), CreateParams{Arch: arch, Init: InitNormal})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
