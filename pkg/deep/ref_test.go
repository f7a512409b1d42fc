package deep

import (
	"math"

	"github.com/mnist-go/nnserver/pkg/network"
)

// The reference implementation: one example at a time, float64, every layer
// written out from its definition with plain loops and no shared code with
// the engine. The tests check it by finite differences, and the engine
// against it.

// refForward returns every layer's output for image x (784 values). masks,
// if not nil, holds per layer the dropout mask of its inputs (1 kept, 0
// dropped; nil for a layer without dropout): training. Without masks a
// layer with dropout p scales its weighted input by 1−p: inference.
func refForward(n *Network, x []float64, masks [][]float64) [][]float64 {
	acts := make([][]float64, len(n.layers))
	in := x
	for i, l := range n.layers {
		is, os := inShape(n.shapes, i), n.shapes[i]
		out := make([]float64, os.Len())
		switch l.Kind {
		case Conv:
			k := l.Size
			for f := range l.Filters {
				for oy := range os.Height {
					for ox := range os.Width {
						z := n.b[i][f]
						for c := range is.Channels {
							for ki := range k {
								for kj := range k {
									w := n.w[i][((f*is.Channels+c)*k+ki)*k+kj]
									z += w * in[(c*is.Height+oy+ki)*is.Width+ox+kj]
								}
							}
						}
						out[(f*os.Height+oy)*os.Width+ox] = refActivate(z, l.Activation)
					}
				}
			}
		case Pool:
			k := l.Size
			for c := range is.Channels {
				for oy := range os.Height {
					for ox := range os.Width {
						m := math.Inf(-1)
						for ki := range k {
							for kj := range k {
								m = math.Max(m, in[(c*is.Height+oy*k+ki)*is.Width+ox*k+kj])
							}
						}
						out[(c*os.Height+oy)*os.Width+ox] = m
					}
				}
			}
		case Dense, Softmax:
			nin := is.Len()
			for j := range l.Size {
				z := 0.0
				for q := range nin {
					v := in[q]
					if masks != nil && masks[i] != nil {
						v *= masks[i][q]
					}
					z += n.w[i][j*nin+q] * v
				}
				if masks == nil {
					z *= 1 - l.Dropout
				}
				out[j] = z + n.b[i][j]
			}
			if l.Kind == Softmax {
				mx := math.Inf(-1)
				for _, z := range out {
					mx = math.Max(mx, z)
				}
				s := 0.0
				for _, z := range out {
					s += math.Exp(z - mx)
				}
				for j, z := range out {
					out[j] = math.Exp(z-mx) / s
				}
			} else {
				for j, z := range out {
					out[j] = refActivate(z, l.Activation)
				}
			}
		}
		acts[i] = out
		in = out
	}
	return acts
}

func refActivate(z float64, f Activation) float64 {
	switch f {
	case Sigmoid:
		return 1 / (1 + math.Exp(-z))
	case Tanh:
		return math.Tanh(z)
	case ReLU:
		return math.Max(z, 0)
	}
	return z
}

// refDerivative returns f'(z) given a = f(z).
func refDerivative(a float64, f Activation) float64 {
	switch f {
	case Sigmoid:
		return a * (1 - a)
	case Tanh:
		return 1 - a*a
	case ReLU:
		if a > 0 {
			return 1
		}
		return 0
	}
	return 1
}

// refCost returns the cost of one example: −ln a_y for a softmax output,
// else the cross-entropy or quadratic cost of a sigmoid output.
func refCost(n *Network, x []float64, y int, cost network.Cost, masks [][]float64) float64 {
	acts := refForward(n, x, masks)
	a := acts[len(acts)-1]
	if n.layers[len(n.layers)-1].Kind == Softmax {
		return -math.Log(a[y])
	}
	c := 0.0
	for j, v := range a {
		t := 0.0
		if j == y {
			t = 1
		}
		if cost == network.CrossEntropy {
			c -= t*math.Log(v) + (1-t)*math.Log(1-v)
		} else {
			c += 0.5 * (v - t) * (v - t)
		}
	}
	return c
}

// refGradient returns the gradient of refCost with respect to every
// layer's weights and biases (nil for pool layers), by back-propagation.
func refGradient(n *Network, x []float64, y int, cost network.Cost, masks [][]float64) (gw, gb [][]float64) {
	acts := refForward(n, x, masks)
	L := len(n.layers)
	gw, gb = make([][]float64, L), make([][]float64, L)
	last := acts[L-1]
	// δ of the last layer with respect to its weighted input.
	delta := make([]float64, len(last))
	for j, v := range last {
		t := 0.0
		if j == y {
			t = 1
		}
		delta[j] = v - t
		if n.layers[L-1].Kind == Dense && cost == network.Quadratic {
			delta[j] *= v * (1 - v)
		}
	}
	for i := L - 1; i >= 0; i-- {
		l := n.layers[i]
		is := inShape(n.shapes, i)
		os := n.shapes[i]
		in := x
		if i > 0 {
			in = acts[i-1]
		}
		dIn := make([]float64, is.Len()) // ∂C/∂(layer i's input)
		switch l.Kind {
		case Conv:
			k := l.Size
			gw[i] = make([]float64, len(n.w[i]))
			gb[i] = make([]float64, len(n.b[i]))
			for f := range l.Filters {
				for oy := range os.Height {
					for ox := range os.Width {
						d := delta[(f*os.Height+oy)*os.Width+ox]
						gb[i][f] += d
						for c := range is.Channels {
							for ki := range k {
								for kj := range k {
									wi := ((f*is.Channels+c)*k+ki)*k + kj
									xi := (c*is.Height+oy+ki)*is.Width + ox + kj
									gw[i][wi] += d * in[xi]
									dIn[xi] += d * n.w[i][wi]
								}
							}
						}
					}
				}
			}
		case Pool:
			k := l.Size
			for c := range is.Channels {
				for oy := range os.Height {
					for ox := range os.Width {
						best := -1
						for ki := range k {
							for kj := range k {
								q := (c*is.Height+oy*k+ki)*is.Width + ox*k + kj
								if best < 0 || in[q] > in[best] {
									best = q
								}
							}
						}
						dIn[best] += delta[(c*os.Height+oy)*os.Width+ox]
					}
				}
			}
		case Dense, Softmax:
			nin := is.Len()
			gw[i] = make([]float64, len(n.w[i]))
			gb[i] = append([]float64(nil), delta...)
			for j, d := range delta {
				for q := range nin {
					m := 1.0
					if masks != nil && masks[i] != nil {
						m = masks[i][q]
					}
					gw[i][j*nin+q] += d * in[q] * m
					dIn[q] += d * n.w[i][j*nin+q] * m
				}
			}
		}
		if i == 0 {
			break
		}
		// Back through layer i−1's activation.
		prev := n.layers[i-1]
		for q := range dIn {
			dIn[q] *= refDerivative(acts[i-1][q], prev.Activation)
		}
		delta = dIn
	}
	return gw, gb
}
