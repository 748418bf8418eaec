package enrich

import (
	"regexp"
	"strings"

	"github.com/mileusna/useragent"
)

// UA is what a user agent string says, coarsely: enough to group page views,
// not to fingerprint anyone.
type UA struct {
	Browser string // as github.com/mileusna/useragent names it: Chrome, Edge, Firefox, Safari, …; "" when unknown
	Version string // major version
	OS      string // Windows, macOS, iOS, Android, ChromeOS, Linux; "" when unknown
	Device  string // desktop, mobile, tablet or bot
	Bot     bool
}

// automationRE adds to the library's crawler list the clients that are not
// crawlers but are not people either: headless browsers, monitors and HTTP
// libraries. A false positive only moves a page view into the bot bucket,
// which is kept.
var automationRE = regexp.MustCompile(`(?i)headless|phantomjs|puppeteer|playwright|selenium|webdriver|lighthouse|` +
	`pagespeed|gtmetrix|pingdom|uptime|^curl/|^wget/|python-requests|python-urllib|aiohttp|go-http-client|^java/|` +
	`okhttp|apache-httpclient|axios|node-fetch|undici|libwww|httpie|scrapy`)

// uaCache remembers recent answers: a site's visitors send a few thousand
// distinct strings, and parsing was a third of a beacon's CPU (make bench).
var uaCache = newCache[string, UA](4096)

// ParseUA classifies a user agent string. An empty one is a bot: every
// browser sends one.
func ParseUA(s string) UA {
	if len(s) > 512 {
		s = s[:512]
	}
	if ua, ok := uaCache.get(s); ok {
		return ua
	}
	ua := parseUA(s)
	uaCache.put(s, ua)
	return ua
}

func parseUA(s string) UA {
	p := useragent.Parse(s)
	ua := UA{OS: p.OS, Bot: s == "" || p.Bot || automationRE.MatchString(s)}
	ua.Browser, ua.Version = p.Name, major(p.Version)
	if ua.OS == useragent.CrOS {
		ua.OS = useragent.ChromeOS
	}
	switch {
	case ua.Bot:
		ua.Device = "bot"
	case p.Tablet:
		ua.Device = "tablet"
	case p.Mobile:
		ua.Device = "mobile"
	default:
		ua.Device = "desktop"
	}
	return ua
}

// major keeps the leading number of a version: "126.0.6478.71" -> "126".
func major(v string) string {
	if i := strings.IndexByte(v, '.'); i >= 0 {
		return v[:i]
	}
	return v
}
