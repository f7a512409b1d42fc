package live

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ remote, given, want string }{
		{"192.0.2.1:5000", "", "192.0.2.1"},
		{"192.0.2.1:5000", "203.0.113.1", "203.0.113.1"},
		{"[2001:db8::1]:443", "", "2001:db8::1"},
		{"192.0.2.1", "", "192.0.2.1"}, // no port
		{"", "", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/socket.io/", nil)
		r.RemoteAddr = tc.remote
		if tc.given != "" {
			r = WithClientAddr(r, tc.given)
		}
		if got := clientAddr(r); got != tc.want {
			t.Errorf("RemoteAddr %q, WithClientAddr %q: %q, want %q", tc.remote, tc.given, got, tc.want)
		}
	}
	for addr, want := range map[string]string{
		"192.0.2.1":                       "192.0.2.1",
		"::ffff:192.0.2.1":                "192.0.2.1",
		"192.0.2.1:80":                    "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":            "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff:ffff:fff": "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:443":           "2001:db8:1:2::/64",
		"fe80::1%eth0":                    "fe80::/64",
		"::1":                             "::/64",
		"not an address":                  "not an address",
		"":                                "",
	} {
		if got := addrKey(addr); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", addr, got, want)
		}
	}
}
