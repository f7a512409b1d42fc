package api

import (
	"bytes"
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
// the "file" field of a multipart form, and imports it.
func (h *handlers) importNetwork(c *gin.Context) {
	select {
	case h.imports <- struct{}{}:
		defer func() { <-h.imports }()
	default:
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds(2*time.Second)))
		writeError(c, http.StatusServiceUnavailable, "too many imports at once; try again shortly")
		return
	}
	data, ok := readModelFile(c)
	if !ok {
		return
	}
	n, err := h.svc.Import(c.Request.Context(), bytes.NewReader(data), int64(len(data)))
	h.reply(c, createdOf(n, "imported"), err)
}

// readModelFile returns the uploaded file's bytes, or answers the client
// (400, 413, 415) and returns false.
func readModelFile(c *gin.Context) ([]byte, bool) {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxImportBytes+64<<10)
	mt, params, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var r io.Reader
	switch mt {
	case "application/octet-stream", "application/zip", "application/x-npz", "":
		r = body
	case "multipart/form-data":
		c.Request.Body = body
		mr, err := c.Request.MultipartReader()
		if err != nil || params["boundary"] == "" {
			writeError(c, http.StatusBadRequest, "the multipart body cannot be read")
			return nil, false
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				if tooLarge(err) {
					writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the model file is larger than %d bytes", MaxImportBytes))
				} else {
					writeError(c, http.StatusBadRequest, "the multipart form has no field named file")
				}
				return nil, false
			}
			if part.FormName() == "file" {
				r = part
				break
			}
		}
	default:
		writeError(c, http.StatusUnsupportedMediaType, "Content-Type must be application/octet-stream or multipart/form-data")
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	switch {
	case tooLarge(err) || len(data) > MaxImportBytes:
		writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the model file is larger than %d bytes", MaxImportBytes))
		return nil, false
	case err != nil:
		writeError(c, http.StatusBadRequest, "could not read the model file")
		return nil, false
	case len(data) == 0:
		writeError(c, http.StatusBadRequest, "the model file is empty")
		return nil, false
	}
	return data, true
}

func tooLarge(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}
