package api

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// The job list: GET /api/training?network_id=&status=&limit=&cursor=.

// maxStatusParam bounds the status parameter: every status once, with
// commas, is 43 characters.
const maxStatusParam = 64

// jobListBody is what GET /api/training answers.
type jobListBody struct {
	Jobs []jobListItem `json:"jobs"`
	// NextCursor is the cursor of the next page, null on the last.
	NextCursor *string `json:"next_cursor"`
}

// jobListItem is a job as GET /api/training/{id} answers it, without its
// history, with its times.
type jobListItem struct {
	jobBody
	// History hides jobBody's: a list leaves it out.
	History    []epochBody `json:"history,omitempty"`
	CreatedAt  string      `json:"created_at"`  // RFC 3339
	StartedAt  *string     `json:"started_at"`  // null until it starts
	FinishedAt *string     `json:"finished_at"` // null until it ends
}

func jobListItemOf(j service.JobInfo) jobListItem {
	b := jobOf(j)
	b.History = nil
	return jobListItem{jobBody: b, CreatedAt: rfc3339(j.CreatedAt), StartedAt: optionalTime(j.StartedAt), FinishedAt: optionalTime(j.FinishedAt)}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := rfc3339(t)
	return &s
}

// encodeCursor and decodeCursor turn a JobPage's Next into the opaque
// cursor clients send back: 8 bytes, base64url.
func encodeCursor(next int64) string {
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, uint64(next)))
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, false
	}
	n := int64(binary.BigEndian.Uint64(b))
	return n, n > 0
}

// listJobs answers a page of the job list, newest first. Unknown
// parameters are ignored; a bad one is a 400 naming it.
func (h *handlers) listJobs(c *gin.Context) {
	f, ok := jobFilterOf(c)
	if !ok {
		return
	}
	p, err := h.svc.Jobs(c.Request.Context(), f)
	if err != nil {
		h.fail(c, err)
		return
	}
	out := jobListBody{Jobs: make([]jobListItem, len(p.Jobs))}
	for i, j := range p.Jobs {
		out.Jobs[i] = jobListItemOf(j)
	}
	if p.Next > 0 {
		next := encodeCursor(p.Next)
		out.NextCursor = &next
	}
	h.writeJSON(c, http.StatusOK, out)
}

// jobFilterOf reads the list's query parameters, or answers 400.
func jobFilterOf(c *gin.Context) (service.JobFilter, bool) {
	f := service.JobFilter{Limit: service.DefaultJobsPage}
	bad := func(msg string) (service.JobFilter, bool) {
		writeError(c, http.StatusBadRequest, msg)
		return service.JobFilter{}, false
	}
	if v, given := c.GetQuery("network_id"); given {
		if modelfile.CheckID(v) != nil {
			return bad("network_id must be a network id (a lowercase UUID)")
		}
		f.NetworkID = v
	}
	if vs, given := c.GetQueryArray("status"); given {
		all := strings.Join(vs, ",")
		if len(all) > maxStatusParam {
			return bad(fmt.Sprintf("status must be one or more of %s, separated by commas", statusList()))
		}
		for s := range strings.SplitSeq(all, ",") {
			st := service.JobStatus(strings.TrimSpace(s))
			if !slices.Contains(service.JobStatuses, st) {
				return bad(fmt.Sprintf("status must be one or more of %s, separated by commas; got %.20q", statusList(), s))
			}
			if !slices.Contains(f.Statuses, st) {
				f.Statuses = append(f.Statuses, st)
			}
		}
	}
	if v, given := c.GetQuery("limit"); given {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > service.MaxJobsPage {
			return bad(fmt.Sprintf("limit must be an integer between 1 and %d", service.MaxJobsPage))
		}
		f.Limit = n
	}
	if v, given := c.GetQuery("cursor"); given {
		n, ok := decodeCursor(v)
		if !ok {
			return bad("cursor must be a next_cursor this server answered")
		}
		f.Before = n
	}
	return f, true
}

// statusList is the statuses a job can have, for messages.
func statusList() string {
	s := make([]string, len(service.JobStatuses))
	for i, st := range service.JobStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}
