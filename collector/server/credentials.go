package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/meridian-net/meridian/collector/store"
)

// badCredentials is a request whose credentials are where they must not be:
// answered with status, reason and msg before any token is looked up.
type badCredentials struct {
	status      int
	reason, msg string
}

// bearerToken returns the request's bearer token ("" when there is none).
// It refuses a token in the URL, even beside a good header: URLs end up in
// proxy and access logs, browser histories and Referer headers, so such a
// token is never used and should be replaced. And it refuses a repeated
// Authorization header: which copy counts would be up to each proxy on the
// way.
func bearerToken(r *http.Request) (string, *badCredentials) {
	if tokenInURL(r.URL.RawQuery) {
		return "", &badCredentials{http.StatusBadRequest, "token_in_url",
			"a token in the URL is refused (URLs are logged and kept): send it as Authorization: Bearer <token>, and replace this one, it may have leaked"}
	}
	if len(r.Header.Values("Authorization")) > 1 {
		return "", &badCredentials{http.StatusBadRequest, "repeated_authorization",
			"more than one Authorization header: send exactly one, Authorization: Bearer <token>"}
	}
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return token, nil
	}
	return "", nil
}

// credentialParams are query keys that carry a credential by convention.
var credentialParams = map[string]bool{"token": true, "access_token": true, "auth": true,
	"authorization": true, "bearer": true, "api_key": true, "apikey": true}

// tokenInURL tells whether a raw query holds a credential: a key named like
// one, or a value that is a Meridian token (agent and reader tokens share
// store.TokenPrefix). It reads every pair, even those url.ParseQuery drops
// (separated by ';', badly escaped).
func tokenInURL(rawQuery string) bool {
	pairs := strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' })
	for _, pair := range pairs {
		k, v, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		if credentialParams[strings.ToLower(k)] || strings.Contains(v, store.TokenPrefix) || strings.Contains(k, store.TokenPrefix) {
			return true
		}
	}
	return false
}
