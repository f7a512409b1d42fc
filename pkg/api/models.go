package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/store"
)

// MaxImportBytes caps an imported model file (the body of POST
// /api/networks/import, with a little room for multipart headers).
const MaxImportBytes = store.MaxImportSize

// maxImports bounds the imports read at once: each holds its file in
// memory (up to MaxImportBytes). Beyond it, 503 with Retry-After.
const maxImports = 2

func (h *handlers) history(c *gin.Context) {
	if id, ok := pathID(c, service.MsgNetworkNotFound); ok {
		recs, err := h.svc.History(c.Request.Context(), id)
		h.reply(c, historyOf(id, recs), err)
	}
}

// download sends the model file as stored, as an attachment.
func (h *handlers) download(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	rc, size, err := h.svc.Download(c.Request.Context(), id)
	if err != nil {
		h.fail(c, err)
		return
	}
	defer rc.Close()
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.npz"`, id))
	c.DataFromReader(http.StatusOK, size, "application/octet-stream", rc, nil)
}

// importNetwork reads a model file, raw (application/octet-stream) or as
// the "file" field of a multipart form, and imports it. The file is read
// first, within the memory budget; then one of the import slots is taken.
func (h *handlers) importNetwork(c *gin.Context) {
	release, ok := h.meter(c, 1)
	if !ok {
		return
	}
	defer release()
	file, ok := readModelFile(c)
	if !ok {
		return
	}
	select {
	case h.imports <- struct{}{}:
		defer func() { <-h.imports }()
	default:
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds(2*time.Second)))
		writeError(c, http.StatusServiceUnavailable, "too many imports at once; try again shortly")
		return
	}
	n, err := h.svc.Import(c.Request.Context(), file, file.size)
	h.reply(c, createdOf(n, "imported"), err)
}

// MaxMultipartPreamble bounds what a multipart import may send before the
// file's bytes: the preamble, the headers of its parts and the parts before
// the file.
const MaxMultipartPreamble = 64 << 10

// readModelFile returns the uploaded file's bytes, or answers the client
// (400, 413, 415, 503) and returns false.
func readModelFile(c *gin.Context) (*chunks, bool) {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxImportBytes+MaxMultipartPreamble)
	mt, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var r io.Reader
	switch mt {
	case "application/octet-stream", "application/zip", "application/x-npz", "":
		r = body
	case "multipart/form-data":
		// Until the file's part begins, at most MaxMultipartPreamble bytes
		// (and the multipart reader's 4 KiB of read-ahead) are read.
		pre := &preambleLimit{r: body, limit: MaxMultipartPreamble + 4<<10}
		c.Request.Body = io.NopCloser(pre)
		mr, err := c.Request.MultipartReader()
		if err != nil || params["boundary"] == "" {
			writeError(c, http.StatusBadRequest, "the multipart body cannot be read")
			return nil, false
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				switch {
				case errors.Is(err, errPreamble):
					writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the multipart form sends more than %d bytes before its file", MaxMultipartPreamble))
				case tooLarge(err):
					writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the model file is larger than %d bytes", MaxImportBytes))
				case isBusy(err):
					writeBusy(c, err)
				default:
					writeError(c, http.StatusBadRequest, "the multipart form has no field named file")
				}
				return nil, false
			}
			if part.FormName() == "file" {
				pre.lift()
				r = part
				break
			}
		}
	default:
		writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/octet-stream or multipart/form-data")
		return nil, false
	}
	file, err := readChunks(r, MaxImportBytes)
	switch {
	case tooLarge(err) || errors.Is(err, errTooLong):
		writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the model file is larger than %d bytes", MaxImportBytes))
		return nil, false
	case isBusy(err):
		writeBusy(c, err)
		return nil, false
	case err != nil:
		writeError(c, http.StatusBadRequest, "could not read the model file")
		return nil, false
	case file.size == 0:
		writeError(c, http.StatusBadRequest, "the model file is empty")
		return nil, false
	}
	return file, true
}

// preambleLimit fails reads past limit bytes until lift is called.
type preambleLimit struct {
	r      io.Reader
	limit  int64
	read   int64
	lifted bool
}

var errPreamble = errors.New("multipart preamble too long")

func (p *preambleLimit) Read(b []byte) (int, error) {
	if !p.lifted {
		if p.read >= p.limit {
			return 0, errPreamble
		}
		b = b[:min(int64(len(b)), p.limit-p.read)]
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	return n, err
}

func (p *preambleLimit) lift() { p.lifted = true }

func tooLarge(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}
