package network_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/network"
)

func TestCheckSizes(t *testing.T) {
	const big = math.MaxInt
	tests := []struct {
		name                 string
		sizes                []int
		maxLayers, maxParams int
		rule                 network.SizeRule // 0: valid
		layer, limit         int
	}{
		{"nielsen", []int{784, 30, 10}, 10, 5_000_000, 0, 0, 0},
		{"no limits", []int{784, 30, 10}, 0, 0, 0, 0, 0},
		{"exactly max params", []int{784, 30, 10}, 3, 23_860, 0, 0, 0},
		{"one param too many", []int{784, 30, 10}, 3, 23_859, network.TooManyParams, -1, 23_859},
		{"nil", nil, 10, 100, network.TooFewLayers, -1, 2},
		{"one layer", []int{784}, 10, 100, network.TooFewLayers, -1, 2},
		{"too many layers", []int{1, 1, 1, 1}, 3, 100, network.TooManyLayers, -1, 3},
		{"zero neurons", []int{784, 0, 10}, 10, 5_000_000, network.BadLayerSize, 1, 5_000_000},
		{"negative neurons", []int{784, 30, -10}, 10, 5_000_000, network.BadLayerSize, 2, 5_000_000},
		{"layer beyond max params", []int{784, 5_000_001, 10}, 10, 5_000_000, network.BadLayerSize, 1, 5_000_000},
		{"first bad layer reported", []int{0, 7, -1}, 0, 0, network.BadLayerSize, 0, big},
		// The attack that found the scratch memory problem: legal, because
		// its parameters are few.
		{"narrow waist", []int{784, 1, 1_666_398, 1, 10}, 10, 5_000_000, 0, 0, 0},
		{"params just over", []int{784, 6378, 10}, 10, 5_000_000, network.TooManyParams, -1, 5_000_000},
		// Without limits the count must still fit an int: these products
		// overflow int64 if taken naively.
		{"overflowing product", []int{1 << 32, 1 << 32}, 0, 0, network.TooManyParams, -1, big},
		{"overflowing sum", []int{1, 1 << 61, 1, 1 << 61, 1, 1 << 61, 1}, 0, 0, network.TooManyParams, -1, big},
		{"max int layer", []int{big, 1}, 0, 0, network.TooManyParams, -1, big},
		{"huge but counted", []int{1 << 20, 1 << 20}, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sizes := slices.Clone(tc.sizes)
			err := network.CheckSizes(sizes, tc.maxLayers, tc.maxParams)
			if !slices.Equal(sizes, tc.sizes) {
				t.Errorf("CheckSizes modified its argument: %v", sizes)
			}
			if tc.rule == 0 {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			var se *network.SizeError
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), want a *SizeError", err, err)
			}
			if se.Rule != tc.rule || se.Layer != tc.layer || se.Limit != tc.limit || !slices.Equal(se.Sizes, tc.sizes) {
				t.Errorf("got %+v, want rule %d, layer %d, limit %d", *se, tc.rule, tc.layer, tc.limit)
			}
			if len(tc.sizes) > 0 {
				sizes[0]++ // the error keeps its own copy
				if se.Sizes[0] != tc.sizes[0] {
					t.Error("the error shares the caller's slice")
				}
			}
			// The message is for logs: it must not speak of an API's fields.
			msg := err.Error()
			if !strings.HasPrefix(msg, "network: ") || strings.Contains(msg, "layer_sizes") || strings.Contains(msg, "_") {
				t.Errorf("message %q", msg)
			}
		})
	}
}

func TestParamCount(t *testing.T) {
	tests := []struct {
		sizes []int
		want  int
	}{
		{nil, 0},
		{[]int{784}, 0},
		{[]int{784, 30, 10}, 30*785 + 10*31},
		{[]int{784, 100, 10}, 100*785 + 10*101},
		{[]int{784, 1, 1_666_398, 1, 10}, 1*785 + 1_666_398*2 + 1*1_666_399 + 10*2},
		{[]int{1 << 32, 1 << 32}, math.MaxInt},
		{[]int{math.MaxInt, math.MaxInt}, math.MaxInt},
	}
	for _, tc := range tests {
		if got := network.ParamCount(tc.sizes); got != tc.want {
			t.Errorf("ParamCount(%v) = %d, want %d", tc.sizes, got, tc.want)
		}
	}
}
