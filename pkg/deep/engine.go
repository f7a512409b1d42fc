package deep

import (
	"math"

	"github.com/mnist-go/nnserver/internal/pace"
	"github.com/mnist-go/nnserver/internal/sat"
	"github.com/mnist-go/nnserver/pkg/network"
)

// engine runs a network's forward and backward passes over a few examples
// at a time, in float32.
//
// Layout. The values of a conv or pool layer for n examples are stored
// channel-major, [channels][n][height·width] ("CNHW"): a conv layer is then
// one product W[filters][k] · col[k][n·positions] over all n examples,
// col being the im2col matrix of its input (k = channels·size·size, in
// the weights' C order). The input image is CNHW with one channel, which
// is also [n][784]. A dense or softmax layer's values are [n][neurons], its
// input flattened per example in C order (channel, row, column) as
// network3.py and PyTorch flatten.
//
// The products (gemm.go), for n examples and m = n·positions:
//
//	conv forward   Z[F][m]  = W[F][k] · col[k][m]          gemmNN
//	conv ∂W        gW[F][k] += δ[F][m] · colᵀ              gemmNT
//	conv ∂input    dcol[k][m] = Wᵀ · δ[F][m], then col2im  gemmTN
//	dense forward  Z[n][out] = X[n][in] · Wᵀ               gemmNT
//	dense ∂W       gW[out][in] += δᵀ · X[n][in]            gemmTN
//	dense ∂input   dX[n][in] = δ[n][out] · W[out][in]      gemmNN
type engine struct {
	layers []Layer
	in     []Shape // layer i's input shape
	out    []Shape // layer i's output shape
	w, b   [][]float32
	cost   network.Cost // of a sigmoid output layer
}

func newEngine(n *Network) *engine {
	e := &engine{layers: n.layers, out: n.shapes, w: make([][]float32, len(n.layers)), b: make([][]float32, len(n.layers))}
	for i := range n.layers {
		e.in = append(e.in, inShape(n.shapes, i))
		e.w[i] = to32(nil, n.w[i])
		e.b[i] = to32(nil, n.b[i])
	}
	return e
}

func to32(dst []float32, src []float64) []float32 {
	if src == nil {
		return nil
	}
	if dst == nil {
		dst = make([]float32, len(src))
	}
	for i, v := range src {
		dst[i] = float32(v)
	}
	return dst
}

// spatial reports whether layer i's output has planes (conv, pool).
func (e *engine) spatial(i int) bool { k := e.layers[i].Kind; return k == Conv || k == Pool }

// needsFlatten reports whether dense layer i's input is stored CNHW with
// more than one channel, which differs from [n][c·h·w] (with one channel,
// as the image, the two are the same).
func (e *engine) needsFlatten(i int) bool {
	return i > 0 && e.spatial(i-1) && e.in[i].Channels > 1
}

// work is the scratch of one goroutine for up to rows examples.
type work struct {
	rows  int
	x     []float32   // input images, [rows][784]
	y     []int32     // labels
	act   [][]float32 // layer outputs
	col   [][]float32 // conv: im2col of the input; dense: the flattened or dropped-out input, nil if the input is used as is
	mask  [][]float32 // dense with dropout: 1 kept, 0 dropped, [rows][in]
	arg   [][]int32   // pool: position of each output's maximum in the input buffer
	d     [][]float32 // training: gradients with respect to act, then the weighted inputs
	dcol  [][]float32 // training: conv after the first: ∂col; dense: ∂ of the flattened input where it differs from d[i-1]
	gw    [][]float32 // training: sums of the gradients of the weights and biases
	gb    [][]float32
	train bool
	cost  float64 // training: the costs of the examples backward has run, summed (Epoch.TrainingCost)

	// pacer, started for a training work, yields the processor about
	// every millisecond between layers, so that a server's other goroutines
	// get in even while a long chunk trains.
	pacer pace.Pacer
}

// colLen returns the length of layer i's col buffer for rows examples, 0
// if it has none.
func (e *engine) colLen(i, rows int) int {
	l := e.layers[i]
	switch l.Kind {
	case Conv:
		return sat.Mul(e.in[i].Channels*l.Size*l.Size*e.out[i].Height*e.out[i].Width, rows)
	case Dense, Softmax:
		if e.needsFlatten(i) || l.Dropout > 0 {
			return sat.Mul(e.in[i].Len(), rows)
		}
	}
	return 0
}

func (e *engine) dcolLen(i, rows int) int {
	if i == 0 {
		return 0
	}
	return e.colLen(i, rows)
}

// workBytes returns the bytes of a work's buffers for rows examples (all
// float32 or int32), the gradient sums excepted: the measure of
// Params.ScratchBytes.
func (e *engine) workBytes(rows int, train bool) int {
	n := sat.Mul(rows, inputShape.Len()+1)
	for i, l := range e.layers {
		o := sat.Mul(rows, e.out[i].Len())
		n = sat.Add(n, o)
		n = sat.Add(n, e.colLen(i, rows))
		if l.Kind == Pool {
			n = sat.Add(n, o)
		}
		if train {
			if l.Dropout > 0 {
				n = sat.Add(n, sat.Mul(rows, e.in[i].Len()))
			}
			n = sat.Add(n, o)
			n = sat.Add(n, e.dcolLen(i, rows))
		}
	}
	return sat.Mul(n, 4)
}

func (e *engine) newWork(rows int, train bool) *work {
	wk := &work{rows: rows, train: train,
		x: make([]float32, rows*inputShape.Len()), y: make([]int32, rows)}
	L := len(e.layers)
	wk.act = make([][]float32, L)
	wk.col = make([][]float32, L)
	wk.mask = make([][]float32, L)
	wk.arg = make([][]int32, L)
	if train {
		wk.d = make([][]float32, L)
		wk.dcol = make([][]float32, L)
		wk.gw = make([][]float32, L)
		wk.gb = make([][]float32, L)
	}
	for i, l := range e.layers {
		o := rows * e.out[i].Len()
		wk.act[i] = make([]float32, o)
		if c := e.colLen(i, rows); c > 0 {
			wk.col[i] = make([]float32, c)
		}
		if l.Kind == Pool {
			wk.arg[i] = make([]int32, o)
		}
		if !train {
			continue
		}
		if l.Dropout > 0 {
			wk.mask[i] = make([]float32, rows*e.in[i].Len())
		}
		wk.d[i] = make([]float32, o)
		if c := e.dcolLen(i, rows); c > 0 {
			wk.dcol[i] = make([]float32, c)
		}
		if l.hasParams() {
			wk.gw[i] = make([]float32, len(e.w[i]))
			wk.gb[i] = make([]float32, len(e.b[i]))
		}
	}
	return wk
}

// input returns layer i's input for n examples: the images or layer i−1's
// output.
func (wk *work) input(i, n int) []float32 {
	if i == 0 {
		return wk.x[:n*inputShape.Len()]
	}
	return wk.act[i-1]
}

// forward runs the n examples in wk.x through every layer. While training,
// dense layers with dropout use wk.mask; otherwise they scale by 1−p.
func (e *engine) forward(wk *work, n int, train bool) {
	for i, l := range e.layers {
		wk.pacer.Tick()
		in, out := e.in[i], e.out[i]
		src := wk.input(i, n)
		act := wk.act[i][:n*out.Len()]
		switch l.Kind {
		case Conv:
			k := in.Channels * l.Size * l.Size
			m := n * out.Height * out.Width
			col := wk.col[i][:k*m]
			im2col(col, src, in, l.Size, n)
			for f := range l.Filters {
				row := act[f*m : (f+1)*m]
				bf := e.b[i][f]
				for j := range row {
					row[j] = bf
				}
			}
			gemmNN(l.Filters, m, k, e.w[i], k, col, m, act, m)
			activate(act, l.Activation)
		case Pool:
			maxPool(act, wk.arg[i][:len(act)], src, in, l.Size, n)
		case Dense, Softmax:
			x := e.denseInput(wk, i, n, train)
			nin := in.Len()
			scale := float32(1)
			if !train && l.Dropout > 0 {
				scale = float32(1 - l.Dropout)
			}
			clear(act)
			gemmNT(n, l.Size, nin, x, nin, e.w[i], nin, act, l.Size)
			for r := range n {
				row := act[r*l.Size : (r+1)*l.Size]
				for j, b := range e.b[i] {
					row[j] = row[j]*scale + b
				}
				if l.Kind == Softmax {
					softmax(row)
				}
			}
			if l.Kind == Dense {
				activate(act, l.Activation)
			}
		}
	}
}

// denseInput returns dense layer i's input for n examples, [n][in]:
// layer i−1's output, flattened if it has planes, with the dropout mask
// applied while training.
func (e *engine) denseInput(wk *work, i, n int, train bool) []float32 {
	nin := e.in[i].Len()
	src := wk.input(i, n)[:n*nin]
	x := src
	if e.needsFlatten(i) {
		x = wk.col[i][:n*nin]
		flatten(x, src, e.in[i], n)
	}
	if train && e.layers[i].Dropout > 0 {
		dst := wk.col[i][:n*nin]
		for j, m := range wk.mask[i][:n*nin] {
			dst[j] = x[j] * m
		}
		x = dst
	}
	return x
}

// backward computes the gradients of the n examples forward has just run
// (while training) and adds them to wk.gw and wk.gb; with dense false,
// those of the dense and softmax layers are left to the caller, who finds
// each such layer's δ in wk.d and its input in denseX.
func (e *engine) backward(wk *work, n int, dense bool) {
	last := len(e.layers) - 1
	// The output layer's δ = ∂C/∂z: a − y for softmax with the
	// log-likelihood and for a sigmoid with the cross-entropy,
	// (a − y)·a(1 − a) for the quadratic cost.
	out := e.out[last].Len()
	d := wk.d[last][:n*out]
	a := wk.act[last][:n*out]
	softmaxOut := e.layers[last].Kind == Softmax
	quadratic := !softmaxOut && e.cost == network.Quadratic
	cost := 0.0
	for r := range n {
		y := int(wk.y[r])
		for j := range out {
			t := float32(0)
			if j == y {
				t = 1
			}
			v := a[r*out+j]
			if quadratic {
				d[r*out+j] = (v - t) * v * (1 - v)
				cost += 0.5 * float64(v-t) * float64(v-t)
			} else {
				d[r*out+j] = v - t
				if !softmaxOut {
					cost += logCost(float64(v), t == 1)
				}
			}
		}
		if softmaxOut {
			cost += logCost(float64(a[r*out+y]), true)
		}
	}
	wk.cost += cost
	for i := last; i >= 0; i-- {
		wk.pacer.Tick()
		l := e.layers[i]
		in, o := e.in[i], e.out[i]
		d := wk.d[i][:n*o.Len()]
		if i != last && l.Activation != "" && !(i+1 <= last && e.layers[i+1].Kind == Pool) {
			derive(d, wk.act[i][:len(d)], l.Activation)
		}
		switch l.Kind {
		case Conv:
			k := in.Channels * l.Size * l.Size
			m := n * o.Height * o.Width
			col := wk.col[i][:k*m]
			for f := range l.Filters {
				s := float32(0)
				for _, v := range d[f*m : (f+1)*m] {
					s += v
				}
				wk.gb[i][f] += s
			}
			gemmNT(l.Filters, k, m, d, m, col, m, wk.gw[i], k)
			if i > 0 {
				dcol := wk.dcol[i][:k*m]
				clear(dcol)
				gemmTN(k, m, l.Filters, e.w[i], k, d, m, dcol, m)
				dst := wk.d[i-1][:n*in.Len()]
				clear(dst)
				col2im(dst, dcol, in, l.Size, n)
			}
		case Pool:
			// Straight to the pool's input's weighted input: δ goes to
			// each block's maximum only, so the derivative of the
			// activation before is taken there alone.
			dst := wk.d[i-1][:n*in.Len()]
			clear(dst)
			arg := wk.arg[i][:len(d)]
			prev := wk.act[i-1][:len(dst)]
			switch f := e.layers[i-1].Activation; f {
			case ReLU:
				for j, p := range arg {
					if prev[p] > 0 {
						dst[p] = d[j]
					}
				}
			case Sigmoid, Tanh:
				for j, p := range arg {
					a := prev[p]
					if f == Sigmoid {
						dst[p] = d[j] * a * (1 - a)
					} else {
						dst[p] = d[j] * (1 - a*a)
					}
				}
			default:
				for j, p := range arg {
					dst[p] = d[j]
				}
			}
		case Dense, Softmax:
			nin := in.Len()
			if dense {
				x := e.denseX(wk, i, n)
				for r := range n {
					for j, v := range d[r*l.Size : (r+1)*l.Size] {
						wk.gb[i][j] += v
					}
				}
				gemmTN(l.Size, nin, n, d, l.Size, x, nin, wk.gw[i], nin)
			}
			if i == 0 {
				continue
			}
			dx := wk.d[i-1][:n*nin]
			if wk.dcol[i] != nil {
				dx = wk.dcol[i][:n*nin]
			}
			clear(dx)
			gemmNN(n, nin, l.Size, d, l.Size, e.w[i], nin, dx, nin)
			if l.Dropout > 0 {
				for j, m := range wk.mask[i][:n*nin] {
					dx[j] *= m
				}
			}
			if e.needsFlatten(i) {
				unflatten(wk.d[i-1][:n*nin], dx, in, n)
			} else if wk.dcol[i] != nil {
				copy(wk.d[i-1][:n*nin], dx)
			}
		}
	}
}

// denseX returns the input dense layer i used in the last forward pass of
// n examples: [n][in].
func (e *engine) denseX(wk *work, i, n int) []float32 {
	nin := e.in[i].Len()
	if wk.col[i] != nil {
		return wk.col[i][:n*nin]
	}
	return wk.input(i, n)[:n*nin]
}

// im2col writes the k×m matrix of n examples' size×size patches of src
// (CNHW, shape in): row (c·size + ki)·size + kj, column (b·oh + oy)·ow + ox
// holds src[c][b][oy+ki][ox+kj].
func im2col(col, src []float32, in Shape, size, n int) {
	h, w := in.Height, in.Width
	oh, ow := h-size+1, w-size+1
	m := n * oh * ow
	plane := h * w
	for c := range in.Channels {
		for ki := range size {
			for kj := range size {
				row := col[((c*size+ki)*size+kj)*m:][:m]
				for b := range n {
					s := src[(c*n+b)*plane+ki*w+kj:][:(oh-1)*w+ow]
					copyRows(row[b*oh*ow:][:oh*ow], ow, s, w, oh, ow)
				}
			}
		}
	}
}

// col2im adds each element of col (as im2col lays it out) to the input
// position it came from.
func col2im(dst, col []float32, in Shape, size, n int) {
	h, w := in.Height, in.Width
	oh, ow := h-size+1, w-size+1
	m := n * oh * ow
	plane := h * w
	for c := range in.Channels {
		for ki := range size {
			for kj := range size {
				row := col[((c*size+ki)*size+kj)*m:][:m]
				for b := range n {
					d := dst[(c*n+b)*plane+ki*w+kj:][:(oh-1)*w+ow]
					addRows(d, w, row[b*oh*ow:][:oh*ow], ow, oh, ow)
				}
			}
		}
	}
}

// maxPool takes the maximum of each size×size block of each plane of src
// (CNHW, shape in) into dst and records its position in src in arg: the
// first of equal maxima, in row-major order.
func maxPool(dst []float32, arg []int32, src []float32, in Shape, size, n int) {
	h, w := in.Height, in.Width
	oh, ow := h/size, w/size
	for p := range in.Channels * n {
		s := src[p*h*w:][:h*w]
		d := dst[p*oh*ow:][:oh*ow]
		a := arg[p*oh*ow:][:oh*ow]
		if size == 2 {
			pool2(d, a, s, w, oh, ow, int32(p*h*w))
			continue
		}
		for oy := range oh {
			for ox := range ow {
				best := (oy*size)*w + ox*size
				for ki := range size {
					for kj := range size {
						if q := (oy*size+ki)*w + ox*size + kj; s[q] > s[best] {
							best = q
						}
					}
				}
				d[oy*ow+ox] = s[best]
				a[oy*ow+ox] = int32(p*h*w + best)
			}
		}
	}
}

// pool2 is maxPool of one plane in blocks of 2×2, base being the plane's
// offset in the input buffer.
func pool2(d []float32, a []int32, s []float32, w, oh, ow int, base int32) {
	for oy := range oh {
		r0 := s[2*oy*w:][:2*ow]
		r1 := s[(2*oy+1)*w:][:2*ow]
		do := d[oy*ow:][:ow]
		ao := a[oy*ow:][:ow]
		q0 := base + int32(2*oy*w)
		for ox := range do {
			best, q := r0[2*ox], q0+int32(2*ox)
			if v := r0[2*ox+1]; v > best {
				best, q = v, q0+int32(2*ox+1)
			}
			if v := r1[2*ox]; v > best {
				best, q = v, q0+int32(w+2*ox)
			}
			if v := r1[2*ox+1]; v > best {
				best, q = v, q0+int32(w+2*ox+1)
			}
			do[ox], ao[ox] = best, q
		}
	}
}

// flatten copies n examples' values from CNHW to [n][c·h·w].
func flatten(dst, src []float32, in Shape, n int) {
	plane := in.Height * in.Width
	for c := range in.Channels {
		for b := range n {
			copy(dst[b*in.Len()+c*plane:][:plane], src[(c*n+b)*plane:][:plane])
		}
	}
}

// unflatten is flatten's inverse.
func unflatten(dst, src []float32, in Shape, n int) {
	plane := in.Height * in.Width
	for c := range in.Channels {
		for b := range n {
			copy(dst[(c*n+b)*plane:][:plane], src[b*in.Len()+c*plane:][:plane])
		}
	}
}

// activate replaces the weighted inputs z by their activations: sigmoid
// and tanh in float32 (activation.go).
func activate(z []float32, f Activation) {
	switch f {
	case Sigmoid:
		sigmoidSlice(z)
	case Tanh:
		tanhSlice(z)
	case ReLU:
		for i, v := range z {
			z[i] = max(v, 0)
		}
	}
}

// derive multiplies the gradients d by the activation's derivative, given
// the activations a.
func derive(d, a []float32, f Activation) {
	a = a[:len(d)]
	switch f {
	case Sigmoid:
		for i, v := range a {
			d[i] *= v * (1 - v)
		}
	case Tanh:
		for i, v := range a {
			d[i] *= 1 - v*v
		}
	case ReLU:
		for i, v := range a {
			if !(v > 0) {
				d[i] = 0
			}
		}
	}
}

// softmax replaces z by its softmax, computed in float64 from the largest
// value down, so that no exponential overflows.
func softmax(z []float32) {
	m := z[0]
	for _, v := range z {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range z {
		s += math.Exp(float64(v - m))
	}
	for i, v := range z {
		z[i] = float32(math.Exp(float64(v-m)) / s)
	}
}

// logCost is −ln a if one, else −ln(1 − a): the log-likelihood cost of a
// softmax output's right answer, and a term of the cross-entropy cost. As
// network2.py's np.nan_to_num, a saturated wrong output costs a large
// finite number rather than +Inf, so that sums stay finite.
func logCost(a float64, one bool) float64 {
	var c float64
	if one {
		c = -math.Log(a)
	} else {
		c = -math.Log(1 - a)
	}
	if math.IsInf(c, 0) || math.IsNaN(c) {
		return math.MaxFloat64 / 1e6
	}
	return c
}
