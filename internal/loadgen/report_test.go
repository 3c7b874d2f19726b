package loadgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadReportSection: --report keeps the rest of the page and replaces
// its own section on the next run.
func TestLoadReportSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	os.WriteFile(path, []byte("# Performance\n\n## Export\n\nhand-written figures\n"), 0o644)
	res := []Result{{Name: "publish 14 keys", Concurrency: 16, Requests: 100, Elapsed: time.Second}}
	for range 2 {
		if err := WriteReport(path, []string{"publish"}, res, []string{"--spawn"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	page := string(b)
	if !strings.HasPrefix(page, "# Performance\n\n## Export\n\nhand-written figures\n\n"+ReportBegin) ||
		strings.Count(page, "## Load tests") != 1 || !strings.Contains(page, "| publish 14 keys | 16 | 100 |") || !strings.HasSuffix(page, ReportEnd+"\n") {
		t.Errorf("page:\n%s", page)
	}
}
