package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestRunPrintsNielsenLines(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--epochs", "2", "--seed", "3"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	re := regexp.MustCompile(`^Epoch (\d): (\d+) / 10000, took \d+\.\d\d seconds$`)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != string(rune('1'+i)) {
			t.Errorf("line %d: %q", i+1, l)
		}
	}
}

func TestRunJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--epochs", "1", "--seed", "3", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q is not one JSON object: %v", out.String(), err)
	}
	if got["epoch"] != 1.0 || got["total"] != 10000.0 || got["accuracy"].(float64) < 0.85 ||
		got["correct"].(float64)/10000 != got["accuracy"] || got["elapsed_time"].(float64) <= 0 || len(got) != 5 {
		t.Errorf("got %v", got)
	}
	if errOut.Len() != 0 {
		t.Errorf("--json wrote to stderr: %q", errOut.String())
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--layers", "100,10"}, "must start with 784"},
		{[]string{"--layers", "784,30,9"}, "must end with 10"},
		{[]string{"--layers", "784"}, "at least an input and an output"},
		{[]string{"--layers", "784,x,10"}, `"x" is not a positive integer`},
		{[]string{"--layers", "784,0,10"}, `"0" is not a positive integer`},
		{[]string{"--epochs", "0"}, "--epochs must be at least 1"},
		{[]string{"--batch", "0"}, "--batch must be between"},
		{[]string{"--eta", "-1"}, "--eta must be a finite positive"},
		{[]string{"--eta", "NaN"}, "--eta must be a finite positive"},
		{[]string{"--eta", "+Inf"}, "--eta must be a finite positive"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		msg := ""
		if err != nil {
			msg = err.Error() + errOut.String()
		}
		if err == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
