package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/service"
)

// One network, its name and notes, its snapshots and restores: GET and
// PATCH /api/networks/{id}, GET …/snapshots, POST …/restore.

// networkDetailBody is GET /api/networks/{id}: the list entry, and more.
type networkDetailBody struct {
	networkBody
	Jobs      []string       `json:"jobs"` // newest first, at most service.MaxNetworkJobs
	Snapshots []snapshotBody `json:"snapshots"`
	Summary   summaryBody    `json:"history_summary"`
}

type summaryBody struct {
	Epochs                 int      `json:"epochs"`
	Records                int      `json:"records"`
	Restores               int      `json:"restores"`
	BestAccuracy           *float64 `json:"best_accuracy"`
	BestEpoch              *int     `json:"best_epoch"`
	LastAccuracy           *float64 `json:"last_accuracy"`
	BestValidationAccuracy *float64 `json:"best_validation_accuracy"`
	BestValidationEpoch    *int     `json:"best_validation_epoch"`
	LastValidationAccuracy *float64 `json:"last_validation_accuracy"`
}

type snapshotBody struct {
	Epoch              int      `json:"epoch"` // the network's, as in /history
	JobID              string   `json:"job_id"`
	Accuracy           float64  `json:"accuracy"`
	ValidationAccuracy *float64 `json:"validation_accuracy"` // null for epochs trained before it was kept
	FinishedAt         string   `json:"finished_at"`         // RFC 3339
	Best               bool     `json:"best"`
}

type snapshotsBody struct {
	NetworkID string         `json:"network_id"`
	Snapshots []snapshotBody `json:"snapshots"` // oldest first
	// BestEpoch is the epoch of the best snapshot, null when none has a
	// validation accuracy; Kept, how many latest epochs keep one.
	BestEpoch *int `json:"best_epoch"`
	Kept      int  `json:"snapshots_kept"`
}

type restoredBody struct {
	NetworkID    string  `json:"network_id"`
	Status       string  `json:"status"`        // "restored"
	Epoch        int     `json:"epoch"`         // the restore's, in the history
	RestoredFrom int     `json:"restored_from"` // the snapshot's epoch
	Accuracy     float64 `json:"accuracy"`
	// ValidationAccuracy is the restored epoch's, null when it had none.
	ValidationAccuracy *float64 `json:"validation_accuracy"`
}

func snapshotsOf(infos []service.SnapshotInfo) []snapshotBody {
	out := make([]snapshotBody, len(infos))
	for i, s := range infos {
		out[i] = snapshotBody{Epoch: s.Epoch, JobID: s.Record.JobID, Accuracy: s.Record.Accuracy,
			ValidationAccuracy: s.Record.ValidationAccuracy, FinishedAt: s.Record.FinishedAt.UTC().Format(time.RFC3339Nano), Best: s.Best}
	}
	return out
}

func positive(n int) *int {
	if n <= 0 {
		return nil
	}
	return &n
}

func (h *handlers) network(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	d, err := h.svc.Network(c.Request.Context(), id)
	if err != nil {
		h.fail(c, err)
		return
	}
	s := d.Summary
	h.writeJSON(c, http.StatusOK, networkDetailBody{networkBody: networkOf(d.NetworkInfo), Jobs: d.Jobs, Snapshots: snapshotsOf(d.Snapshots),
		Summary: summaryBody{Epochs: s.Epochs, Records: s.Records, Restores: s.Restores,
			BestAccuracy: s.BestAccuracy, BestEpoch: positive(s.BestEpoch), LastAccuracy: s.LastAccuracy,
			BestValidationAccuracy: s.BestValidationAccuracy, BestValidationEpoch: positive(s.BestValidationEpoch),
			LastValidationAccuracy: s.LastValidationAccuracy}})
}

func (h *handlers) labelNetwork(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	release, ok := h.meter(c, jsonReadFactor, true)
	if !ok {
		return
	}
	defer release()
	name, notes, ok := decodeLabel(c, h.svc.Limits())
	if !ok {
		return
	}
	n, err := h.svc.Label(c.Request.Context(), id, name, notes)
	h.reply(c, networkOf(n), err)
}

func (h *handlers) snapshots(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	infos, err := h.svc.Snapshots(c.Request.Context(), id)
	body := snapshotsBody{NetworkID: id, Snapshots: snapshotsOf(infos), Kept: h.svc.Limits().SnapshotsKept}
	for _, s := range infos {
		if s.Best {
			body.BestEpoch = &s.Epoch
		}
	}
	h.reply(c, body, err)
}

func (h *handlers) restore(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	release, ok := h.meter(c, jsonReadFactor, true)
	if !ok {
		return
	}
	defer release()
	epoch, best, ok := decodeRestore(c, h.svc.Limits())
	if !ok {
		return
	}
	r, err := h.svc.Restore(c.Request.Context(), id, epoch, best)
	h.reply(c, restoredBody{NetworkID: id, Status: "restored", Epoch: r.Record.Epoch, RestoredFrom: r.Record.RestoredFrom,
		Accuracy: r.Record.Accuracy, ValidationAccuracy: r.Record.ValidationAccuracy}, err)
}
