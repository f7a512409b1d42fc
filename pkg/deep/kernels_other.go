//go:build !amd64

package deep

// There are no assembly kernels for this architecture.
var (
	hasAVX = false
	useAVX = false
)

func kernNN(m, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("deep: no assembly kernels")
}

func kernTN(m, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("deep: no assembly kernels")
}

func kernNT(m, n, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("deep: no assembly kernels")
}

func copyRows8(dst *float32, ldd int, src *float32, lds int, rows int, width int) {
	panic("deep: no assembly kernels")
}

func addRows8(dst *float32, ldd int, src *float32, lds int, rows int, width int) {
	panic("deep: no assembly kernels")
}

func sigmoid8(z *float32, n int) {
	panic("deep: no assembly kernels")
}

func tanh8(z *float32, n int) {
	panic("deep: no assembly kernels")
}
