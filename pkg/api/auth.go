package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/service"
)

// The HTTP side of access control: it only reads the credentials from the
// headers into the request's context; who may do what is the service's
// Policy (pkg/service/auth.go).

// OwnerTokenHeader carries a network's owner token (Authorization: Bearer
// does too).
const OwnerTokenHeader = "X-Owner-Token"

// credentials reads "Authorization: Bearer …" and X-Owner-Token into the
// request's context (service.WithCredentials). Another Authorization
// scheme counts as none. Nothing here logs them.
func credentials(c *gin.Context) {
	var cr service.Credentials
	if scheme, token, ok := strings.Cut(c.Request.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		cr.Bearer = strings.TrimSpace(token)
	}
	cr.Owner = strings.TrimSpace(c.Request.Header.Get(OwnerTokenHeader))
	if cr != (service.Credentials{}) {
		c.Request = c.Request.WithContext(service.WithCredentials(c.Request.Context(), cr))
	}
}

// metricsGuard lets GET /metrics through only as the Policy says
// (METRICS_TOKEN, or the admin token).
func (h *handlers) metricsGuard(c *gin.Context) {
	if err := h.svc.Policy().Metrics(service.CredentialsOf(c.Request.Context())); err != nil {
		h.fail(c, err)
	}
}

// access answers what the caller may do to a network: a read, open to
// all; the page checks a pasted owner token with it.
func (h *handlers) access(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	a, err := h.svc.Access(c.Request.Context(), id)
	body := accessBody{NetworkID: a.NetworkID, Ownership: a.Ownership, MayChange: a.Role != service.RoleNone}
	if a.Role != service.RoleNone {
		role := string(a.Role)
		body.Role = &role
	}
	h.reply(c, body, err)
}

// authenticate adds what a 401 needs: the scheme to use.
func authenticate(c *gin.Context, status int) {
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="nnserver"`)
	}
}
