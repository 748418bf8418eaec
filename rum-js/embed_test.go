package rumjs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func serve(t *testing.T, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w.Result()
}

func TestEmbeddedIsDist(t *testing.T) {
	b, err := os.ReadFile("dist/rum.v1.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, Script()) || len(b) == 0 {
		t.Fatalf("embedded script (%d bytes) differs from dist/rum.v1.js (%d bytes)", len(Script()), len(b))
	}
}

func TestHandlerServesScript(t *testing.T) {
	sum := sha256.Sum256(Script())
	wantETag := `"` + hex.EncodeToString(sum[:]) + `"`
	for _, tc := range []struct{ path, cache string }{
		{"/rum.v1.js", "public, max-age=31536000, immutable"},
		{"/rum.js", "public, max-age=300"},
	} {
		res := serve(t, "GET", tc.path, nil)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: got status %d, want 200", tc.path, res.StatusCode)
		}
		if !bytes.Equal(body, Script()) {
			t.Errorf("GET %s: body is not the script", tc.path)
		}
		for k, want := range map[string]string{
			"Content-Type":                 "application/javascript; charset=utf-8",
			"Cache-Control":                tc.cache,
			"ETag":                         wantETag,
			"Cross-Origin-Resource-Policy": "cross-origin",
			"Access-Control-Allow-Origin":  "*",
			"X-Content-Type-Options":       "nosniff",
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("GET %s: %s: got %q, want %q", tc.path, k, got, want)
			}
		}
		if res.Header.Get("Last-Modified") != "" {
			t.Errorf("GET %s: unexpected Last-Modified", tc.path)
		}
	}
}

func TestHandlerNotModified(t *testing.T) {
	for _, inm := range []string{ETag(), `"x", ` + ETag(), "W/" + ETag(), "*"} {
		res := serve(t, "GET", "/rum.v1.js", map[string]string{"If-None-Match": inm})
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("If-None-Match %s: got %d with %d bytes, want 304 and none", inm, res.StatusCode, len(body))
		}
		if res.Header.Get("ETag") != ETag() || res.Header.Get("Cache-Control") == "" {
			t.Errorf("If-None-Match %s: 304 lacks ETag or Cache-Control", inm)
		}
	}
	res := serve(t, "GET", "/rum.js", map[string]string{"If-None-Match": `"stale"`})
	if res.StatusCode != 200 {
		t.Errorf("stale If-None-Match: got %d, want 200", res.StatusCode)
	}
}

func TestHandlerHeadMethodsPaths(t *testing.T) {
	res := serve(t, "HEAD", "/rum.v1.js", nil)
	if body, _ := io.ReadAll(res.Body); res.StatusCode != 200 || len(body) != 0 || res.Header.Get("ETag") == "" {
		t.Errorf("HEAD: got %d with %d bytes", res.StatusCode, len(body))
	}
	if res := serve(t, "POST", "/rum.js", nil); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: got %d, Allow %q; want 405, GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
	for _, p := range []string{"/", "/rum.v2.js", "/rum.js/x", "/dist/rum.v1.js"} {
		if res := serve(t, "GET", p, nil); res.StatusCode != 404 {
			t.Errorf("GET %s: got %d, want 404", p, res.StatusCode)
		}
	}
}

func TestSRI(t *testing.T) {
	sum := sha512.Sum384(Script())
	want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
	if got := SRI(); got != want {
		t.Fatalf("SRI: got %q, want %q", got, want)
	}
	if !strings.HasPrefix(SRI(), "sha384-") || len(SRI()) != len("sha384-")+64 {
		t.Fatalf("SRI: malformed %q", SRI())
	}
}

func TestTestPageLoadsScript(t *testing.T) {
	b, err := os.ReadFile("testdata/page.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`src="{{.Collector}}/rum.v1.js"`, `data-site="{{.Site}}"`, `{{.CDN1}}`, `{{.CDN2}}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("testdata/page.html lacks %s", want)
		}
	}
}
