// Package web holds the management page, embedded.
//
// The server serves Files at / (index.html for /). The page uses only the
// public REST API and the Socket.IO events of PROTOCOL.md; the Socket.IO
// browser client is vendored in vendor/ (see vendor/README.md), no CDN.
package web

import "embed"

// Files holds index.html, app.js, style.css, layers.js and layers.css (loaded
// when first needed) and vendor/ (socket.io.min.js and
// its README) at its root.
//
//go:embed index.html app.js style.css layers.js layers.css vendor
var Files embed.FS
