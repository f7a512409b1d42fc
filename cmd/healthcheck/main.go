// Command healthcheck is the container's HEALTHCHECK probe (the distroless
// image has no shell, curl or wget). It asks the server on this host for
// GET /api/status, port $PORT (default 8000), and exits 0 if the answer is
// 200 with "status": "online" within 3 seconds, 1 otherwise.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// timeout bounds the whole probe, below the Dockerfile's --timeout=5s.
const timeout = 3 * time.Second

func main() {
	if err := probe(os.Getenv("PORT"), timeout); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// probe checks the server listening on port of the loopback interface; an
// empty port means 8000.
func probe(port string, timeout time.Duration) error {
	if port == "" {
		port = "8000"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("PORT %q is not a port number", port)
	}
	return check("http://127.0.0.1:"+port+"/api/status", timeout)
}

// check GETs url and requires 200 and a JSON body with "status": "online".
func check(url string, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, // never via a proxy
	}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: body is not JSON: %w", url, err)
	}
	if body.Status != "online" {
		return fmt.Errorf("GET %s: status %q, want \"online\"", url, body.Status)
	}
	return nil
}
