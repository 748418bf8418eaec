package probe

import "time"

// BrowserOptions are the options of a browser check; its target is an
// http(s) URL loaded in headless Chromium.
//
//	browser:
//	  exec_path: /usr/bin/chromium  # default: $MERIDIAN_CHROMIUM, else /usr/bin/chromium
//	  wait_after_load: 1s           # after the load event, to catch late LCP/CLS/long tasks; <0: none
//	  concurrency: 2                # page loads at once in this agent (all browser checks)
//	  user_agent: ""                # default: Chromium's, "HeadlessChrome" -> "Chrome", + " meridian-agent"
//
// One Chromium process serves every check with the same exec_path; each
// check gets a fresh incognito-like browser context (empty cache, cookies
// and storage), so every load is cold.
type BrowserOptions struct {
	ExecPath      string        `yaml:"exec_path"`
	WaitAfterLoad time.Duration `yaml:"wait_after_load"`
	Concurrency   int           `yaml:"concurrency"`
	UserAgent     string        `yaml:"user_agent"`
}
