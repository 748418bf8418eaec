package probe

// The Chromium processes browser checks share, their profiles, and the
// slots that bound page loads at once.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// browserProc is one Chromium process shared by every check with the same
// executable.
type browserProc struct {
	execPath    string
	ready       chan struct{} // closed once started (or failed: err)
	err         error
	ctx         context.Context // the browser's own chromedp context; done when it dies
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	userAgent   string
	pid         int
	profile     string // the user data directory, removed on close
}

var browsers = struct {
	sync.Mutex
	m       map[string]*browserProc
	reaping sync.WaitGroup // dead browsers being cleaned up
}{m: map[string]*browserProc{}}

// browserStarts counts Chromium processes started (tests read it).
var browserStarts atomic.Int64

// getBrowser returns the running browser for execPath, starting it once
// (however many checks ask at the same time) and again if it died.
func getBrowser(ctx context.Context, execPath string) (*browserProc, error) {
	browsers.Lock()
	b := browsers.m[execPath]
	if b != nil {
		select {
		case <-b.ready:
			if b.err != nil || b.ctx.Err() != nil {
				browsers.reaping.Go(b.close) // dead: reap it and start another
				b = nil
			}
		default: // starting: wait for it below
		}
	}
	if b == nil {
		b = &browserProc{execPath: execPath, ready: make(chan struct{})}
		browsers.m[execPath] = b
		go b.start()
	}
	browsers.Unlock()
	select {
	case <-b.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	return b, nil
}

// start starts the Chromium process, in no check's context: it outlives
// them all.
func (b *browserProc) start() {
	defer close(b.ready)
	fail := func(err error, out *tailWriter) {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			msg = "; it said: " + msg
		}
		b.err = fmt.Errorf("cannot start Chromium %s: %v%s; %s", b.execPath, err, msg, ChromiumInstallHint)
	}
	out := &tailWriter{max: 2048}
	if _, err := exec.LookPath(b.execPath); err != nil {
		fail(err, out)
		return
	}
	browserStarts.Add(1)
	// A fresh profile per process, with network prediction off: Chromium
	// otherwise preconnects to the page's origin when the navigation
	// starts, and the document's connect and TLS time would vanish.
	dir, err := newChromiumProfile()
	if err != nil {
		fail(err, out)
		return
	}
	b.profile = dir
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.UserDataDir(dir),
		chromedp.ExecPath(b.execPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.WindowSize(1350, 940), // Lighthouse's desktop viewport
		chromedp.CombinedOutput(out),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	timer := time.AfterFunc(browserStartTimeout, cancel)
	err = chromedp.Do(ctx) // binds the browser's life to ctx
	var v browser.GetVersionResult
	if err == nil {
		v, err = chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	}
	if !timer.Stop() && err != nil {
		err = fmt.Errorf("not ready after %s: %w", browserStartTimeout, err)
	}
	if err != nil {
		cancel()
		allocCancel()
		os.RemoveAll(dir)
		fail(err, out)
		return
	}
	b.ctx, b.cancel, b.allocCancel = ctx, cancel, allocCancel
	b.userAgent = strings.Replace(v.UserAgent, "HeadlessChrome", "Chrome", 1) + " " + UserAgent
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
}

// close stops the browser and waits until its process and profile are gone.
func (b *browserProc) close() {
	<-b.ready
	if b.err != nil {
		return
	}
	tctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	_ = chromedp.Cancel(tctx) // graceful, then killed
	cancel()
	b.cancel()
	b.allocCancel() // waits until the process has exited
	removeChromiumProfile(b.profile)
}

// removeChromiumProfile removes a profile once the browser has exited. Its
// children (zygote, network service) can outlive a browser that was killed
// and keep writing there: they are ended first, found by the profile on
// their command line, which is unique to the process this package started.
func removeChromiumProfile(dir string) {
	if dir == "" {
		return
	}
	for quiet, deadline := 0, time.Now().Add(2*time.Second); quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if killProfileLeftovers(dir) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	for range 5 {
		if os.RemoveAll(dir) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killProfileLeftovers kills the processes started with --user-data-dir=dir
// and says how many it found (none where there is no /proc).
func killProfileLeftovers(dir string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := "--user-data-dir=" + dir
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00"), want) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			n++
		}
	}
	return n
}

// profilePrefix names the profiles this package makes in the temp dir.
const profilePrefix = "meridian-chromium-"

// newChromiumProfile makes an empty user data directory whose preferences
// turn network prediction (preconnect, DNS prefetch) off, and notes the
// agent's pid in it. It first removes the profiles of agents that died
// without closing their browser.
func newChromiumProfile() (string, error) {
	sweepStaleProfiles()
	dir, err := os.MkdirTemp("", profilePrefix)
	if err != nil {
		return "", err
	}
	prefs := `{"net":{"network_prediction_options":2}}`
	err = os.Mkdir(filepath.Join(dir, "Default"), 0o700)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(prefs), 0o600)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "meridian.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepStaleProfiles removes the profiles whose agent process is gone (on
// systems with /proc; elsewhere it leaves them).
func sweepStaleProfiles() {
	if _, err := os.Stat("/proc/self"); err != nil {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), profilePrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "meridian.pid"))
		if err != nil {
			continue // not ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			removeChromiumProfile(dir)
		}
	}
}

// CloseBrowser stops the shared Chromium processes; the next browser check
// starts a new one. Loads still running fail. Call it at shutdown.
func CloseBrowser() {
	browsers.Lock()
	bs := browsers.m
	browsers.m = map[string]*browserProc{}
	browsers.Unlock()
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(b.close)
	}
	wg.Wait()
	browsers.reaping.Wait()
}

// tailWriter keeps the last max bytes written to it: the browser's last
// words when it fails to start.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = w.buf[len(w.buf)-w.max:]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// pageLoads bounds the page loads running at once in this process. Each
// check waits until fewer than its own concurrency are running.
var pageLoads loadSlots

type loadSlots struct {
	mu      sync.Mutex
	running int
	freed   chan struct{} // closed and replaced on every release
}

func (s *loadSlots) acquire(ctx context.Context, limit int) error {
	for {
		s.mu.Lock()
		if s.running < limit {
			s.running++
			s.mu.Unlock()
			return nil
		}
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *loadSlots) release() {
	s.mu.Lock()
	s.running--
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
	s.mu.Unlock()
}
