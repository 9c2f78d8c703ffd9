package report

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/result"
)

var screenshotDir = flag.String("screenshot", "", "also write the browser test's screenshots to this directory")

// requireChromium returns the browser the browser test drives: chromium, or
// another Chromium build on PATH when there is no chromium. Without any, the test
// is skipped (and fails under CI).
func requireChromium(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("chromium"); err != nil {
		for _, name := range []string{"chromium-browser", "google-chrome", "google-chrome-stable"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
	}
	return testutil.RequireTool(t, "chromium", "Debian package chromium; the browser test renders the report in it")
}

// chartProbe is what the page reports about itself after it loaded.
type chartProbe struct {
	Verdict    string         `json:"verdict"`
	Charts     map[string]int `json:"charts"`
	Widths     map[string]int `json:"widths"`
	BandLabels []string       `json:"bandLabels"`
	Resources  []string       `json:"resources"`
}

const probeJS = `(() => {
  const out = {verdict: "", charts: {}, widths: {}, bandLabels: [], resources: []};
  const v = document.querySelector('#verdict');
  if (v) out.verdict = v.dataset.verdict || "";
  for (const svg of document.querySelectorAll('svg.chart')) {
    let n = 0;
    for (const s of svg.querySelectorAll('[data-points]')) n += parseInt(s.dataset.points, 10) || 0;
    out.charts[svg.id] = n;
    out.widths[svg.id] = Math.round(svg.getBoundingClientRect().width);
  }
  const seen = new Set();
  for (const t of document.querySelectorAll('#chart-latency text.band-label')) seen.add(t.textContent);
  out.bandLabels = Array.from(seen);
  out.resources = performance.getEntriesByType('resource').map(e => e.name);
  return JSON.stringify(out);
})()`

// TestBrowserRendersReport opens report.html from disk in headless Chromium with
// the network off, checks the charts drew data and no request left the page, and
// saves a screenshot.
func TestBrowserRendersReport(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := requireChromium(t)
	cases := map[string]*result.Result{"wet": sample(t, "sample-wet.json"), "dry": sample(t, "sample-dry.json")}
	for name, res := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			page := filepath.Join(dir, "report.html")
			if err := result.WriteFileAtomic(page, func(w io.Writer) error { return HTML(w, res) }); err != nil {
				t.Fatal(err)
			}
			probe, shot, requests := loadInBrowser(t, bin, page)

			if probe.Verdict != PageVerdict(res).Label() {
				t.Errorf("verdict banner = %q, want %q", probe.Verdict, PageVerdict(res).Label())
			}
			for _, id := range []string{"chart-latency", "chart-throughput", "chart-errors", "chart-gantt"} {
				n, ok := probe.Charts[id]
				if !ok {
					t.Errorf("chart %s missing", id)
					continue
				}
				min := 20
				if id == "chart-gantt" {
					min = len(res.Migration.Steps)
				}
				if id == "chart-errors" {
					min = 0
					if name == "wet" {
						min = 3
					}
				}
				if n < min {
					t.Errorf("chart %s plotted %d points, want at least %d", id, n, min)
				}
				if probe.Widths[id] < 600 {
					t.Errorf("chart %s is %d px wide on a laptop screen", id, probe.Widths[id])
				}
			}
			for _, s := range res.Migration.Steps {
				if !strings.Contains(strings.Join(probe.BandLabels, "\n"), s.Name) {
					t.Errorf("cutover band label %q not rendered (got %q)", s.Name, probe.BandLabels)
				}
			}
			if len(probe.Resources) > 0 {
				t.Errorf("the page loaded resources: %q", probe.Resources)
			}
			for _, u := range requests {
				if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
					t.Errorf("request left the page: %s", u)
				}
			}
			if len(shot) < 10_000 {
				t.Errorf("screenshot is only %d bytes", len(shot))
			}
			out := filepath.Join(dir, "report-"+name+".png")
			if err := os.WriteFile(out, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", out)
			if *screenshotDir != "" {
				if err := os.MkdirAll(*screenshotDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(*screenshotDir, "report-"+name+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// loadInBrowser opens page in a fresh headless Chromium whose network is off and
// returns the page's probe, a full-page PNG screenshot and every request URL the
// tab sent.
func loadInBrowser(t *testing.T, bin, page string) (chartProbe, []byte, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.WindowSize(1366, 900),
		// Belt and braces with the offline emulation below: nothing resolves and
		// every proxied request goes to a closed port on loopback.
		chromedp.ProxyServer("127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.Flag("user-data-dir", t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()

	var mu sync.Mutex
	var requests []string
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	}))
	defer cancelTab()

	offline := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		if _, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}},
		}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(tab, offline, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("load %s in chromium: %v", page, err)
	}
	raw, err := chromedp.Run(tab, chromedp.Evaluate[string](probeJS))
	if err != nil {
		t.Fatalf("probe page: %v", err)
	}
	var probe chartProbe
	if err := json.Unmarshal([]byte(raw), &probe); err != nil {
		t.Fatalf("decode probe %q: %v", raw, err)
	}
	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return probe, shot, append([]string(nil), requests...)
}
