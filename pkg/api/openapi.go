package api

import (
	_ "embed"

	"github.com/gin-gonic/gin"
)

// openAPI is the OpenAPI 3 description of the REST API.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(c *gin.Context) { c.Data(200, "application/json; charset=utf-8", openAPI) }
