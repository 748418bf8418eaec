package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
)

// TestAccuracyReport is the phase-accuracy benchmark behind `make bench`: for
// several injected delays it prints the median of what the server really
// spent, what this probe measured and what `curl -w` measured against the same
// server in the same run. It reports; it does not assert timings (these
// machines are noisy), so it runs only with MERIDIAN_ACCURACY=1.
func TestAccuracyReport(t *testing.T) {
	if os.Getenv("MERIDIAN_ACCURACY") == "" {
		t.Skip("a benchmark, not a test: run with MERIDIAN_ACCURACY=1 (make bench)")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed for the side-by-side figures: apt-get install -y curl")
	}
	const runs = 21
	srv := newAccuracyServer(t)
	fmt.Printf("\nphase accuracy, median of %d fresh connections per cell (ms); drift = measured - server spent\n", runs)
	fmt.Printf("%-6s %8s %10s %10s %10s %10s %10s\n", "phase", "injected", "spent", "meridian", "curl", "drift(m)", "drift(c)")
	for _, phase := range []string{"ttfb", "tls"} {
		for _, d := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
			srv.set(phase, d)
			var spent, ours, theirs []float64
			for i := 0; i < runs; i++ {
				srv.reset()
				m := srv.probe(t, phase)
				spent = append(spent, srv.spent())
				ours = append(ours, m)
				srv.reset()
				theirs = append(theirs, srv.curl(t, curl, phase))
			}
			s, o, c := median(spent), median(ours), median(theirs)
			fmt.Printf("%-6s %8.1f %10.3f %10.3f %10.3f %+10.3f %+10.3f\n", phase, ms(d), s, o, c, o-s, c-s)
		}
	}
	fmt.Println("tls 'spent' is the injected hold only; both tools' drift includes the handshake's own crypto.")

	// DNS: curl cannot be pointed at a test resolver, so only this probe.
	fmt.Printf("\n%-6s %8s %10s %10s\n", "phase", "injected", "meridian", "drift")
	dns := testsrv.NewDNS(t, "acc.test. 60 IN A 127.0.0.1")
	for _, d := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
		dns.SetDelay(d)
		var ours []float64
		for i := 0; i < runs; i++ {
			res, err := DNS(context.Background(), &Check{Name: "acc", Kind: "dns", Target: "acc.test", Timeout: 5 * time.Second,
				DNS: DNSOptions{Resolvers: []string{dns.Addr}}})
			if err != nil || len(res) != 1 || res[0].DNSMs == nil {
				t.Fatalf("dns probe: %v %+v", err, res)
			}
			ours = append(ours, *res[0].DNSMs)
		}
		o := median(ours)
		fmt.Printf("%-6s %8.1f %10.3f %+10.3f\n", "dns", ms(d), o, o-ms(d))
	}
}

// accuracyServer is an HTTPS server that holds its ServerHello or its first
// byte for a set delay and records how long it really waited.
type accuracyServer struct {
	*httptest.Server
	caFile string

	mu        sync.Mutex
	holdTLS   time.Duration
	holdTTFB  time.Duration
	spentTLS  time.Duration
	spentTTFB time.Duration
	phase     string
}

func newAccuracyServer(t *testing.T) *accuracyServer {
	ca := testsrv.NewCA(t, "accuracy CA")
	cert := ca.Issue(t, testsrv.Leaf{Names: []string{"127.0.0.1"}})
	s := &accuracyServer{caFile: ca.WritePEM(t)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wait(s.holdTTFB, &s.spentTTFB)
		w.Write([]byte("ok"))
	}))
	s.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.wait(s.holdTLS, &s.spentTLS)
			return nil, nil
		},
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *accuracyServer) wait(d time.Duration, spent *time.Duration) {
	start := time.Now()
	if d > 0 {
		time.Sleep(d)
	}
	s.mu.Lock()
	*spent = time.Since(start)
	s.mu.Unlock()
}

func (s *accuracyServer) set(phase string, d time.Duration) {
	s.holdTLS, s.holdTTFB, s.phase = 0, 0, phase
	if phase == "tls" {
		s.holdTLS = d
	} else {
		s.holdTTFB = d
	}
}

func (s *accuracyServer) reset() { s.mu.Lock(); s.spentTLS, s.spentTTFB = 0, 0; s.mu.Unlock() }

// spent is what the server waited in the phase being measured.
func (s *accuracyServer) spent() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == "tls" {
		return ms(s.spentTLS)
	}
	return ms(s.spentTTFB)
}

func (s *accuracyServer) probe(t *testing.T, phase string) float64 {
	res, err := HTTP(context.Background(), &Check{Name: "acc", Kind: "http", Target: s.URL + "/", Timeout: 5 * time.Second,
		HTTP: HTTPOptions{CAFile: s.caFile}})
	if err != nil || len(res) == 0 || !res[0].OK {
		t.Fatalf("http probe failed: %v %+v", err, res)
	}
	if phase == "tls" {
		return *res[0].TLSMs
	}
	return *res[0].TTFBMs
}

// curl returns the phase from curl's cumulative timers.
func (s *accuracyServer) curl(t *testing.T, curl, phase string) float64 {
	out, err := exec.Command(curl, "-s", "-o", "/dev/null", "--cacert", s.caFile,
		"-w", "%{time_connect} %{time_appconnect} %{time_starttransfer}", s.URL+"/").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	f := strings.Fields(string(out))
	v := make([]float64, 3)
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i], 64)
		v[i] *= 1000
	}
	if phase == "tls" {
		return v[1] - v[0]
	}
	return v[2] - v[1]
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
