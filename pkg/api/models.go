package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// MaxImportBytes caps an imported model file (the body of POST
// /api/networks/import, with a little room for multipart headers).
const MaxImportBytes = modelfile.MaxImportSize

// maxImports bounds the imports read at once: each holds its file in
// memory (up to MaxImportBytes). Beyond it, 503 with Retry-After.
const maxImports = 2

// History pages: ?from_epoch=N&limit=M.
const (
	// DefaultHistoryPage is the records answered when limit is not given:
	// every history most networks have.
	DefaultHistoryPage = 1000
	// MaxHistoryPage bounds limit: about 2.5 MB of JSON.
	MaxHistoryPage = 10_000
)

// history answers one page of a network's history, encoded once per
// network version and page.
func (h *handlers) history(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	from, limit := 1, DefaultHistoryPage
	for _, q := range []struct {
		name     string
		dst      *int
		min, max int
	}{{"from_epoch", &from, 1, math.MaxInt32}, {"limit", &limit, 1, MaxHistoryPage}} {
		if v, given := c.GetQuery(q.name); given {
			n, err := strconv.Atoi(v)
			if err != nil || n < q.min || n > q.max {
				writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be an integer between %d and %d", q.name, q.min, q.max))
				return
			}
			*q.dst = n
		}
	}
	hist, err := h.svc.History(c.Request.Context(), id)
	if err != nil {
		h.fail(c, err)
		return
	}
	recs := hist.Records
	lo, _ := slices.BinarySearchFunc(recs, from, func(r modelfile.EpochRecord, epoch int) int { return cmp.Compare(r.Epoch, epoch) })
	hi := min(lo+limit, len(recs))
	key := versionKey{kind: "history", networkID: id, version: hist.Version, page: [2]int{from, limit}}
	body, done, err := h.cache.get(c.Request.Context(), key, encodeBytes(int64(hi-lo)*historyRecordJSON+256), func() []byte {
		b := historyOf(id, recs[lo:hi])
		b.Total = len(recs)
		if hi < len(recs) {
			b.NextFromEpoch = &recs[hi].Epoch
		}
		data, err := json.Marshal(b)
		if err != nil { // numbers the store has checked are finite
			return []byte(`{"error":"internal error"}`)
		}
		return data
	})
	if err != nil {
		writeBusy(c, err)
		return
	}
	defer done()
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// historyRecordJSON bounds one history record in JSON.
const historyRecordJSON = 512

// download sends the model file as stored, as an attachment; with
// ?epoch=N, the snapshot after that epoch.
func (h *handlers) download(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	name := id + ".npz"
	var (
		rc   io.ReadCloser
		size int64
		err  error
	)
	if v, given := c.GetQuery("epoch"); given {
		epoch, perr := strconv.Atoi(v)
		if perr != nil || epoch < 1 || epoch > modelfile.MaxHistory {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("epoch must be an integer between 1 and %d", modelfile.MaxHistory))
			return
		}
		rc, size, err = h.svc.DownloadSnapshot(c.Request.Context(), id, epoch)
		name = fmt.Sprintf("%s-epoch-%d.npz", id, epoch)
	} else {
		rc, size, err = h.svc.Download(c.Request.Context(), id)
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	defer rc.Close()
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	c.DataFromReader(http.StatusOK, size, "application/octet-stream", rc, nil)
}

// importNetwork reads a model file, raw (application/octet-stream) or as
// the "file" field of a multipart form, and imports it. The file is read
// first, within the memory budget; then one of the import slots is taken.
func (h *handlers) importNetwork(c *gin.Context) {
	// The name and notes given, checked before the file is read.
	var o service.ImportOptions
	for _, q := range []struct {
		key   string
		dst   **string
		check func(service.Limits, string) error
	}{{service.FieldName, &o.Name, service.Limits.CheckName}, {service.FieldNotes, &o.Notes, service.Limits.CheckNotes}} {
		if v, given := c.GetQuery(q.key); given {
			if err := q.check(h.svc.Limits(), v); err != nil {
				invalid(c, err)
				return
			}
			*q.dst = &v
		}
	}
	release, ok := h.meter(c, 1, false)
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
	n, err := h.svc.Import(c.Request.Context(), file, file.size, o)
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
