// Package data embeds the four MNIST IDX files (gzip-compressed) so that every
// program built from this module finds the data set without a path.
//
// The files are the canonical distribution by Yann LeCun, Corinna Cortes and
// Christopher Burges, licensed CC BY-SA 3.0.
package data

import "embed"

// MNIST holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz at its root.
//
//go:embed *.gz
var MNIST embed.FS
