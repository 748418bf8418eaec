// Package rumjs owns the browser beacon script: the built dist/rum.v1.js,
// embedded so that the collector serves it without npm at build time.
package rumjs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed dist/rum.v1.js
var script []byte

var (
	etag = func() string { s := sha256.Sum256(script); return `"` + hex.EncodeToString(s[:]) + `"` }()
	sri  = func() string { s := sha512.Sum384(script); return "sha384-" + base64.StdEncoding.EncodeToString(s[:]) }()
)

// Cache lifetimes: the versioned name may be cached for a year (a change
// that breaks the beacon format gets a new name), the bare name briefly so
// that sites picking it up see fixes within minutes.
const (
	cacheVersioned = "public, max-age=31536000, immutable"
	cacheBare      = "public, max-age=300"
)

// Script returns the built script. The slice is shared: do not modify it.
func Script() []byte { return script }

// ETag is the strong entity tag the handler sends: the quoted hex sha256.
func ETag() string { return etag }

// SRI returns the Subresource Integrity value of the script ("sha384-…"),
// for the integrity attribute of the snippet. The tag then needs
// crossorigin="anonymous", which the handler's CORS header allows.
func SRI() string { return sri }

// Handler serves the script at /rum.v1.js and /rum.js (GET and HEAD), with a
// strong ETag, 304 on a matching If-None-Match, Range support, and headers
// that let any site embed it. Other paths get 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cc string
		switch r.URL.Path {
		case "/rum.v1.js":
			cc = cacheVersioned
		case "/rum.js":
			cc = cacheBare
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/javascript; charset=utf-8")
		h.Set("Cache-Control", cc)
		h.Set("ETag", etag)
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Timing-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		// ServeContent answers If-None-Match with 304 (weak comparison, as
		// RFC 9110 asks) and handles HEAD and Range; a zero time sends no
		// Last-Modified, so the ETag alone validates.
		http.ServeContent(w, r, "rum.v1.js", time.Time{}, bytes.NewReader(script))
	})
}
