package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/digit"
	"github.com/mnist-go/nnserver/pkg/service"
)

type evaluationBody struct {
	NetworkID       string           `json:"network_id"`
	Accuracy        float64          `json:"accuracy"`
	Correct         int              `json:"correct"`
	Total           int              `json:"total"`
	ConfusionMatrix [][]int          `json:"confusion_matrix"` // row: actual digit; column: predicted
	PerClass        []classBody      `json:"per_class"`
	Mistakes        []classifiedBody `json:"most_confident_mistakes"`
}

type classBody struct {
	Digit     int      `json:"digit"`
	Count     int      `json:"count"`
	Precision *float64 `json:"precision"` // null when the digit is never predicted
	Recall    *float64 `json:"recall"`
}

type classifiedBody struct {
	ExampleIndex   int     `json:"example_index"`
	ActualDigit    int     `json:"actual_digit"`
	PredictedDigit int     `json:"predicted_digit"`
	Confidence     float64 `json:"confidence"`
	ImageData      string  `json:"image_data"` // base64 PNG of the 28×28 digit
}

type confusionBody struct {
	NetworkID      string           `json:"network_id"`
	ActualDigit    int              `json:"actual_digit"`
	PredictedDigit int              `json:"predicted_digit"`
	Count          int              `json:"count"`
	Examples       []classifiedBody `json:"examples"`
}

func classifiedOf(cs []service.Classified) []classifiedBody {
	out := make([]classifiedBody, len(cs))
	for i, c := range cs {
		out[i] = classifiedBody{ExampleIndex: c.Index, ActualDigit: c.Actual, PredictedDigit: c.Predicted,
			Confidence: service.Microseconds(c.Confidence), ImageData: digitPNG(c.Pixels)}
	}
	return out
}

// digitPNG encodes a 28×28 test image as a small PNG, base64.
func digitPNG(pixels []uint8) string {
	x := make([]float64, len(pixels))
	for i, v := range pixels {
		x[i] = float64(v) / 255
	}
	png, err := digit.PNG(x)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(png)
}

// evaluationBytes bounds the encoding of an evaluation: twelve 28×28 PNGs
// in base64 (at most 1.5 KB each), the matrix and the figures, encoded.
const evaluationBytes = 128 << 10

func (h *handlers) evaluation(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	ev, err := h.svc.Evaluation(c.Request.Context(), id)
	if err != nil {
		h.fail(c, err)
		return
	}
	key := versionKey{kind: "evaluation", networkID: id, version: ev.Version}
	body, done, err := h.cache.get(c.Request.Context(), key, evaluationBytes, func() []byte {
		b := evaluationBody{NetworkID: id, Correct: ev.Correct, Total: ev.Total,
			Accuracy: float64(ev.Correct) / float64(ev.Total), Mistakes: classifiedOf(ev.Mistakes)}
		for r := range ev.Confusion {
			b.ConfusionMatrix = append(b.ConfusionMatrix, ev.Confusion[r][:])
		}
		for _, p := range ev.PerClass {
			b.PerClass = append(b.PerClass, classBody{Digit: p.Digit, Count: p.Count, Precision: p.Precision, Recall: p.Recall})
		}
		data, _ := json.Marshal(b) // plain numbers and strings: cannot fail
		return data
	})
	if err != nil {
		writeBusy(c, err)
		return
	}
	defer done()
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// confusion answers the test images of one cell of the confusion matrix:
// ?actual=A&predicted=P.
func (h *handlers) confusion(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	actual, err1 := strconv.Atoi(c.Query("actual"))
	predicted, err2 := strconv.Atoi(c.Query("predicted"))
	if err1 != nil || err2 != nil {
		writeError(c, http.StatusBadRequest, "actual and predicted must be digits from 0 to 9, e.g. ?actual=4&predicted=9")
		return
	}
	cell, err := h.svc.ConfusionCell(c.Request.Context(), id, actual, predicted)
	h.reply(c, confusionBody{NetworkID: id, ActualDigit: cell.Actual, PredictedDigit: cell.Predicted, Count: cell.Count,
		Examples: classifiedOf(cell.Examples)}, err)
}
