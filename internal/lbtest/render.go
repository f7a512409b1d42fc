package lbtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Config is what a test (or docker-compose.scale.yml) runs the files of
// deploy/ with: the two things a person edits in them.
type Config struct {
	Listen   string   // what to listen on: nginx's `listen`, HAProxy's `bind` ("127.0.0.1:8080", "80", ":80")
	Backends []string // host:port of each replica, in order
	Prefix   string   // tests only: a directory for nginx's pid file, logs and temporary files; "" keeps the system's
}

// Render returns deploy/nginx.conf or deploy/haproxy.cfg (by path's base
// name) edited as a person deploying it would: its listen address and its
// replicas replaced by c's, every other line kept as it is. It fails if the
// file no longer has the lines it edits, in the shape it expects, so that a
// change to the shipped files that the tests cannot follow breaks them.
//
// The replicas of deploy/nginx.conf are the `server host:port …;` lines of
// its upstream block; each of c.Backends gets one with the options of the
// shipped ones (which must all have the same). deploy/haproxy.cfg has a
// group of `server rN[suffix] host:port …` lines per kind of server (the
// checked ones, the fail-open backups), one line per shipped replica, N
// counting from 1; each group is written again for c.Backends, r1, r2, … in
// their order.
func Render(path string, c Config) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lbtest: %w", err)
	}
	var out []byte
	switch filepath.Base(path) {
	case "nginx.conf":
		out, err = renderNginx(src, c)
	case "haproxy.cfg":
		out, err = renderHAProxy(src, c)
	default:
		err = errors.New("not nginx.conf or haproxy.cfg")
	}
	if err != nil {
		return nil, fmt.Errorf("lbtest: rendering %s: %w", path, err)
	}
	return out, nil
}

var (
	nginxListen   = regexp.MustCompile(`^(\s*)listen\s+\S+;(.*)$`)
	nginxUpstream = regexp.MustCompile(`^\s*upstream\s+\S+\s*\{\s*$`)
	nginxServer   = regexp.MustCompile(`^(\s*)server\s+(\S+?)((?:\s+[^;#\s]+)*);\s*$`)
	nginxClose    = regexp.MustCompile(`^\s*\}\s*$`)
	nginxMain     = regexp.MustCompile(`^worker_processes\s`)
	nginxHTTP     = regexp.MustCompile(`^http\s*\{\s*$`)

	haproxyBind   = regexp.MustCompile(`^(\s*)bind\s+\S+(.*)$`)
	haproxyServer = regexp.MustCompile(`^(\s*)server\s+r(\d+)(\S*)\s+(\S+)(.*)$`)
)

func renderNginx(src []byte, c Config) ([]byte, error) {
	if len(c.Backends) == 0 || c.Listen == "" {
		return nil, errors.New("no backends, or nothing to listen on")
	}
	lines := strings.Split(string(src), "\n")
	var out []string
	listens, upstreams := 0, 0
	inUpstream, replaced, sawMain, sawHTTP := false, false, false, false
	var opts string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case nginxUpstream.MatchString(l):
			upstreams++
			inUpstream = true
		case inUpstream && nginxClose.MatchString(l):
			inUpstream = false
		case inUpstream && nginxServer.MatchString(l):
			if replaced {
				return nil, fmt.Errorf("line %d: the upstream's server lines are not together", i+1)
			}
			indent := nginxServer.FindStringSubmatch(l)[1]
			opts = nginxServer.FindStringSubmatch(l)[3]
			for ; i < len(lines) && nginxServer.MatchString(lines[i]); i++ {
				if o := nginxServer.FindStringSubmatch(lines[i])[3]; o != opts {
					return nil, fmt.Errorf("line %d: server options %q differ from the first server's %q", i+1, o, opts)
				}
			}
			i--
			for _, b := range c.Backends {
				out = append(out, indent+"server "+b+opts+";")
			}
			replaced = true
			continue
		case nginxListen.MatchString(l):
			listens++
			m := nginxListen.FindStringSubmatch(l)
			l = m[1] + "listen " + c.Listen + ";" + m[2]
		}
		out = append(out, l)
		if c.Prefix == "" {
			continue
		}
		// The test's own paths, where nginx would use the system's.
		if nginxMain.MatchString(l) {
			sawMain = true
			out = append(out, "pid "+c.Prefix+"/nginx.pid;", "error_log "+c.Prefix+"/error.log warn;")
		}
		if nginxHTTP.MatchString(l) {
			sawHTTP = true
			for _, d := range []string{"access_log " + c.Prefix + "/access.log;",
				"client_body_temp_path " + c.Prefix + "/client_body;", "proxy_temp_path " + c.Prefix + "/proxy;",
				"fastcgi_temp_path " + c.Prefix + "/fastcgi;", "uwsgi_temp_path " + c.Prefix + "/uwsgi;",
				"scgi_temp_path " + c.Prefix + "/scgi;"} {
				out = append(out, "    "+d)
			}
		}
	}
	switch {
	case listens != 1:
		return nil, fmt.Errorf("%d `listen` lines, want 1", listens)
	case upstreams != 1:
		return nil, fmt.Errorf("%d upstream blocks, want 1", upstreams)
	case !replaced:
		return nil, errors.New("no `server host:port;` line in the upstream block")
	}
	if c.Prefix != "" && (!sawMain || !sawHTTP) {
		return nil, errors.New("no worker_processes line or http block for the test's paths")
	}
	return []byte(strings.Join(out, "\n")), nil
}

// haproxyGroup is one kind of server line: its name's suffix and options.
type haproxyGroup struct {
	indent, suffix, opts string
	addrs                []string // per shipped replica, in order of N
}

func renderHAProxy(src []byte, c Config) ([]byte, error) {
	if len(c.Backends) == 0 || c.Listen == "" {
		return nil, errors.New("no backends, or nothing to listen on")
	}
	lines := strings.Split(string(src), "\n")
	var out []string
	binds := 0
	first, last := -1, -1
	var groups []*haproxyGroup
	for i, l := range lines {
		if m := haproxyBind.FindStringSubmatch(l); m != nil {
			binds++
			lines[i] = m[1] + "bind " + c.Listen + m[2]
			continue
		}
		m := haproxyServer.FindStringSubmatch(l)
		if m == nil {
			if strings.HasPrefix(strings.TrimSpace(l), "server ") {
				return nil, fmt.Errorf("line %d: a server line not named r<N>: %q", i+1, l)
			}
			continue
		}
		if first >= 0 && last != i-1 {
			return nil, fmt.Errorf("line %d: the server lines are not together", i+1)
		}
		if first < 0 {
			first = i
		}
		last = i
		var g *haproxyGroup
		for _, h := range groups {
			if h.suffix == m[3] && h.opts == m[5] {
				g = h
			}
		}
		if g == nil {
			g = &haproxyGroup{indent: m[1], suffix: m[3], opts: m[5]}
			groups = append(groups, g)
		}
		if n, _ := strconv.Atoi(m[2]); n != len(g.addrs)+1 {
			return nil, fmt.Errorf("line %d: server r%s%s, want r%d%s", i+1, m[2], m[3], len(g.addrs)+1, m[3])
		}
		g.addrs = append(g.addrs, m[4])
	}
	switch {
	case binds != 1:
		return nil, fmt.Errorf("%d `bind` lines, want 1", binds)
	case first < 0:
		return nil, errors.New("no `server rN host:port` line")
	}
	for _, g := range groups[1:] {
		if !slices.Equal(g.addrs, groups[0].addrs) {
			return nil, fmt.Errorf("servers r<N>%s are %v, servers r<N>%s %v: each kind must list the same replicas",
				g.suffix, g.addrs, groups[0].suffix, groups[0].addrs)
		}
	}
	out = append(out, lines[:first]...)
	for _, g := range groups {
		for i, b := range c.Backends {
			out = append(out, fmt.Sprintf("%sserver r%d%s %s%s", g.indent, i+1, g.suffix, b, g.opts))
		}
	}
	out = append(out, lines[last+1:]...)
	return []byte(strings.Join(out, "\n")), nil
}
