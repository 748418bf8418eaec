package enrich

import (
	"regexp"
	"strings"
)

// UA is what a user agent string says, coarsely: enough to group page views,
// not to fingerprint anyone.
type UA struct {
	Browser string // Chrome, Edge, Firefox, Safari, Opera, Samsung Internet, HeadlessChrome, …; "" when unknown
	Version string // major version
	OS      string // Windows, macOS, iOS, Android, ChromeOS, Linux; "" when unknown
	Device  string // desktop, mobile, tablet or bot
	Bot     bool
}

// botRE matches crawlers, monitors, HTTP libraries and automation. A
// false positive only moves a page view into the bot bucket, which is kept.
var botRE = regexp.MustCompile(`(?i)bot\b|bot/|crawl|spider|slurp|headless|phantomjs|puppeteer|playwright|selenium|webdriver|` +
	`lighthouse|pagespeed|gtmetrix|pingdom|uptime|monitor|facebookexternalhit|mediapartners|adsbot|apis-google|feedfetcher|` +
	`bingpreview|embedly|^curl/|^wget/|python-requests|python-urllib|aiohttp|go-http-client|^java/|okhttp|apache-httpclient|` +
	`axios|node-fetch|undici|libwww|httpie|scrapy`)

// browsers are tried in order: many browsers also claim Chrome and Safari.
var browsers = []struct{ name, token string }{
	{"HeadlessChrome", "HeadlessChrome/"},
	{"Edge", "Edg/"}, {"Edge", "EdgA/"}, {"Edge", "EdgiOS/"}, {"Edge", "Edge/"},
	{"Opera", "OPR/"}, {"Opera", "OPiOS/"},
	{"Samsung Internet", "SamsungBrowser/"},
	{"Yandex", "YaBrowser/"},
	{"UC Browser", "UCBrowser/"},
	{"Firefox", "Firefox/"}, {"Firefox", "FxiOS/"},
	{"Chrome", "CriOS/"}, {"Chrome", "Chrome/"}, {"Chromium", "Chromium/"},
	{"Safari", "Version/"}, // Safari's own version; the "Safari/" token is WebKit's
}

// ParseUA classifies a user agent string. An empty one is a bot: every
// browser sends one.
func ParseUA(s string) UA {
	var ua UA
	if len(s) > 512 {
		s = s[:512]
	}
	ua.Bot = s == "" || botRE.MatchString(s)
	for _, b := range browsers {
		if i := strings.Index(s, b.token); i >= 0 {
			if b.name == "Safari" && !strings.Contains(s, "Safari/") {
				continue
			}
			ua.Browser, ua.Version = b.name, major(s[i+len(b.token):])
			break
		}
	}
	ua.OS = osOf(s)
	switch {
	case ua.Bot:
		ua.Device = "bot"
	case strings.Contains(s, "iPad") || strings.Contains(s, "Tablet") ||
		(strings.Contains(s, "Android") && !strings.Contains(s, "Mobile")):
		ua.Device = "tablet"
	case strings.Contains(s, "Mobi") || strings.Contains(s, "iPhone") || strings.Contains(s, "iPod"):
		ua.Device = "mobile"
	default:
		ua.Device = "desktop"
	}
	return ua
}

func osOf(s string) string {
	switch {
	case strings.Contains(s, "Windows"):
		return "Windows"
	case strings.Contains(s, "iPhone") || strings.Contains(s, "iPad") || strings.Contains(s, "iPod"):
		return "iOS"
	case strings.Contains(s, "Android"):
		return "Android"
	case strings.Contains(s, "CrOS"):
		return "ChromeOS"
	case strings.Contains(s, "Mac OS X") || strings.Contains(s, "Macintosh"):
		return "macOS"
	case strings.Contains(s, "Linux") || strings.Contains(s, "X11"):
		return "Linux"
	}
	return ""
}

// major returns the leading digits of a version ("126.0.1" → "126").
func major(s string) string {
	n := 0
	for n < len(s) && n < 6 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return s[:n]
}
