// Package deploy's tests check the deployment files beside them against the
// candor binary they deploy.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The deployment files in deploy/ are parsed, and every flag and CANDOR_*
// variable they give `candor serve` must exist in `candor serve --help`;
// every Candor metric the alerts and the dashboard use must exist in the
// code; metrics are scraped from the metrics listener, never the public
// port; readiness probes ask /ready; no proxy keeps an access log.

const deployDir = "."

// serveHelpText is what `candor serve --help` prints, from a candor built
// from this tree.
var serveHelpText = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "candor-deploy-test-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "candor")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/candor").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	var errOut bytes.Buffer
	cmd := exec.Command(bin, "serve", "--help")
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil || !strings.Contains(errOut.String(), "Usage: candor serve") {
		return "", fmt.Errorf("serve --help: %v\n%s", err, errOut.String())
	}
	return errOut.String(), nil
})

// serveHelp returns the flags and environment variables that
// `candor serve --help` lists, and the roles its --roles takes.
func serveHelp(t *testing.T) (flags, envs map[string]bool, roles []string) {
	t.Helper()
	help, err := serveHelpText()
	if err != nil {
		t.Fatal(err)
	}
	flags, envs = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)  \[(CANDOR_[A-Z0-9_]+)\]`).FindAllStringSubmatch(help, -1) {
		flags[m[1]], envs[m[2]] = true, true
	}
	if len(flags) < 20 || !flags["store"] || !envs["CANDOR_STORE"] || !flags["roles"] {
		t.Fatalf("serve --help lists %d flags:\n%s", len(flags), help)
	}
	m := regexp.MustCompile(`subset of ([a-z, ]+?) \(`).FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("serve --help lists no roles:\n%s", help)
	}
	return flags, envs, strings.Split(m[1], ", ")
}

// parseRoles checks a --roles value as `candor serve` does: all, or a
// comma-separated list of roles.
func parseRoles(s string, roles []string) error {
	if s == "" || s == "all" {
		return nil
	}
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); !slices.Contains(roles, r) {
			return fmt.Errorf("--roles: unknown role %q (want all, or some of %s)", r, strings.Join(roles, ", "))
		}
	}
	return nil
}

// deployFiles returns the files under deploy/, relative paths.
func deployFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(deployDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Ext(p) != ".go" { // not these tests
			rel, _ := filepath.Rel(deployDir, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// serveArgs collects the flags of `candor serve` command lines found in a
// parsed document: command or args lists that contain "serve".
func serveArgs(v any, into *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range []string{"command", "args"} {
			if list, ok := v[k].([]any); ok && slices.Contains(list, any("serve")) {
				for _, a := range list {
					if s, ok := a.(string); ok {
						*into = append(*into, s)
					}
				}
			}
		}
		for _, x := range v {
			serveArgs(x, into)
		}
	case []any:
		for _, x := range v {
			serveArgs(x, into)
		}
	}
}

// envKeys collects the keys of environment maps (compose environment,
// ConfigMap data).
func envKeys(v any, into *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if strings.HasPrefix(k, "CANDOR_") {
				*into = append(*into, k)
			}
			envKeys(x, into)
		}
	case []any:
		for _, x := range v {
			envKeys(x, into)
		}
	}
}

var (
	flagRE = regexp.MustCompile(`(?:^|[\s"'\[,])--([a-z][a-z0-9-]+)`)
	envRE  = regexp.MustCompile(`\bCANDOR_[A-Z0-9_]+\b`)
	// A `candor serve` command line of a script or unit, with its
	// continuation lines.
	serveLineRE = regexp.MustCompile(`(?m)(?:candor|"\$BIN")\s+serve\b(?:[^\n]*\\\n)*[^\n]*`)
)

func TestDeployFiles(t *testing.T) {
	flags, envs, roles := serveHelp(t)
	var usedFlags, usedEnvs []string
	var ruleFiles, dashboards, policies int
	for _, rel := range deployFiles(t) {
		b, err := os.ReadFile(filepath.Join(deployDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		base := filepath.Base(rel)
		// Every CANDOR_ variable anywhere is a flag's.
		usedEnvs = append(usedEnvs, envRE.FindAllString(src, -1)...)
		var args []string
		switch ext := filepath.Ext(rel); {
		case ext == ".yaml" || ext == ".yml":
			docs, err := parseYAML(src)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			for _, d := range docs {
				serveArgs(d, &args)
				envKeys(d, &usedEnvs)
			}
			if base == "alerts.yml" {
				ruleFiles++
				checkAlerts(t, rel, docs)
			}
			if base == "prometheus.yml" {
				checkScrapeTargets(t, rel, src)
			}
			if strings.HasPrefix(rel, "kubernetes/") {
				policies += checkKubernetes(t, rel, docs)
			}
		case ext == ".json":
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if panels, ok := v["panels"].([]any); ok {
				dashboards++
				if len(panels) < 8 {
					t.Errorf("%s: %d panels", rel, len(panels))
				}
			}
			checkMetrics(t, rel, src)
		case ext == ".service":
			checkUnit(t, rel, src)
			for _, m := range serveLineRE.FindAllString(src, -1) {
				args = append(args, strings.Fields(m)...)
			}
		case ext == ".env":
			for i, line := range strings.Split(src, "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				k, _, ok := strings.Cut(line, "=")
				if !ok || !envRE.MatchString(k) {
					t.Errorf("%s:%d: not CANDOR_NAME=value: %q", rel, i+1, line)
				}
			}
		case ext == ".sh":
			if out, err := exec.Command("bash", "-n", filepath.Join(deployDir, rel)).CombinedOutput(); err != nil {
				t.Errorf("%s: bash -n: %v\n%s", rel, err, out)
			}
			for _, m := range serveLineRE.FindAllString(src, -1) {
				args = append(args, strings.Fields(m)...)
			}
		case base == "Dockerfile":
			for _, line := range strings.Split(src, "\n") {
				if cmd, ok := strings.CutPrefix(line, "CMD "); ok {
					var list []string
					if err := json.Unmarshal([]byte(cmd), &list); err != nil {
						t.Errorf("%s: CMD is not a JSON list: %v", rel, err)
					}
					args = append(args, list...)
				}
			}
		case strings.HasSuffix(base, ".conf") || strings.HasSuffix(base, ".conf.in"):
			checkConf(t, rel, src)
		}
		for _, a := range args {
			for _, m := range flagRE.FindAllStringSubmatch(" "+a, -1) {
				usedFlags = append(usedFlags, m[1])
				if !flags[m[1]] {
					t.Errorf("%s: flag --%s is not in candor serve --help", rel, m[1])
				}
			}
		}
		// Flags named in prose (comments of redis.conf: --redis-wait-replicas).
		if strings.HasSuffix(base, ".conf") {
			for _, m := range flagRE.FindAllStringSubmatch(src, -1) {
				if !flags[m[1]] {
					t.Errorf("%s: flag --%s is not in candor serve --help", rel, m[1])
				}
			}
		}
		// --roles values are roles.
		for i, a := range args {
			if a == "--roles" && i+1 < len(args) && !strings.Contains(args[i+1], "$") && !strings.Contains(args[i+1], "%") {
				if err := parseRoles(strings.Trim(args[i+1], `"`), roles); err != nil {
					t.Errorf("%s: %v", rel, err)
				}
			}
		}
	}
	for _, e := range usedEnvs {
		if !envs[e] {
			t.Errorf("deploy/: %s is not a variable of candor serve --help", e)
		}
	}
	if len(usedFlags) < 10 || len(usedEnvs) < 10 {
		t.Errorf("found only %d flags and %d variables in deploy/", len(usedFlags), len(usedEnvs))
	}
	if ruleFiles != 1 || dashboards != 1 {
		t.Errorf("%d alert rule files, %d dashboards", ruleFiles, dashboards)
	}
	if policies != 1 {
		t.Errorf("%d network policies in kubernetes/, want one that keeps the metrics port to Prometheus", policies)
	}
}

// checkAlerts: the rule file has the alerts the operator needs, each with
// an expression over metrics that exist.
func checkAlerts(t *testing.T, rel string, docs []any) {
	t.Helper()
	want := map[string]bool{"CandorErrorRate": false, "CandorExportLag": false, "CandorLogCheckpointAge": false, "CandorRedisDown": false}
	groups, _ := docs[0].(map[string]any)["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			r := r.(map[string]any)
			name, _ := r["alert"].(string)
			expr, _ := r["expr"].(string)
			if name == "" || expr == "" {
				t.Errorf("%s: a rule without alert or expr: %v", rel, r)
			}
			if _, ok := want[name]; ok {
				want[name] = true
			}
			checkMetrics(t, rel+" "+name, expr)
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("%s: no alert %s", rel, name)
		}
	}
}

var metricRE = regexp.MustCompile(`\bcandor_[a-z_]+\b`)

// checkMetrics: every candor_* metric in src is registered somewhere in
// the code.
func checkMetrics(t *testing.T, where, src string) {
	t.Helper()
	for _, name := range metricRE.FindAllString(src, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !metricDefined(t, base) {
			t.Errorf("%s: metric %s is not defined in the code", where, name)
		}
	}
}

// goSources is the text of the module's non-test Go files.
var goSources = sync.OnceValue(func() []byte {
	var all bytes.Buffer
	filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != ".." && (d.Name() == "deploy" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return nil
	})
	return all.Bytes()
})

func metricDefined(t *testing.T, name string) bool {
	t.Helper()
	return bytes.Contains(goSources(), []byte(`"`+name+`"`))
}

// checkKubernetes: every Deployment probes liveness on /health and
// readiness on /ready, has Prometheus scrape its metrics port (not the
// public one) and sets resources; every Ingress keeps no access log; it
// returns the number of NetworkPolicies, each checked by
// checkMetricsPolicy.
func checkKubernetes(t *testing.T, rel string, docs []any) (policies int) {
	t.Helper()
	for _, d := range docs {
		m, ok := d.(map[string]any)
		if ok && m["kind"] == "Ingress" {
			ann, _ := m["metadata"].(map[string]any)["annotations"].(map[string]any)
			if ann["nginx.ingress.kubernetes.io/enable-access-log"] != "false" {
				t.Errorf("%s: the ingress keeps access logs (client addresses, /v?c= codes): set nginx.ingress.kubernetes.io/enable-access-log: \"false\"", rel)
			}
		}
		if ok && m["kind"] == "NetworkPolicy" {
			checkMetricsPolicy(t, rel, m)
			policies++
		}
		if !ok || m["kind"] != "Deployment" {
			continue
		}
		tmpl := m["spec"].(map[string]any)["template"].(map[string]any)
		spec := tmpl["spec"].(map[string]any)
		ann, _ := tmpl["metadata"].(map[string]any)["annotations"].(map[string]any)
		for _, c := range spec["containers"].([]any) {
			c := c.(map[string]any)
			for probe, path := range map[string]string{"readinessProbe": "/ready", "livenessProbe": "/health"} {
				p, _ := c[probe].(map[string]any)
				get, _ := p["httpGet"].(map[string]any)
				if get["path"] != path {
					t.Errorf("%s: container %v: %s does not GET %s", rel, c["name"], probe, path)
				}
			}
			ports := map[string]string{}
			for _, p := range c["ports"].([]any) {
				p := p.(map[string]any)
				ports[fmt.Sprint(p["name"])] = fmt.Sprint(p["containerPort"])
			}
			if ports["metrics"] == "" || ann["prometheus.io/port"] != ports["metrics"] || ports["metrics"] == ports["http"] {
				t.Errorf("%s: container %v: Prometheus scrapes port %v, want its own metrics port (%v), not the public one (%v)", rel, c["name"], ann["prometheus.io/port"], ports["metrics"], ports["http"])
			}
			res, _ := c["resources"].(map[string]any)
			if res["requests"] == nil || res["limits"] == nil {
				t.Errorf("%s: container %v without resource requests and limits", rel, c["name"])
			}
		}
	}
	return policies
}

// checkUnit: a systemd unit of sections and Key=Value lines, with an
// ExecStart.
func checkUnit(t *testing.T, rel, src string) {
	t.Helper()
	sections := map[string]bool{}
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sections[line] = true
		case strings.Contains(line, "="):
			if len(sections) == 0 {
				t.Errorf("%s:%d: a setting outside a section", rel, i+1)
			}
		default:
			t.Errorf("%s:%d: not a unit line: %q", rel, i+1, line)
		}
	}
	for _, s := range []string{"[Unit]", "[Service]", "[Install]"} {
		if !sections[s] {
			t.Errorf("%s: no %s section", rel, s)
		}
	}
	if !strings.Contains(src, "ExecStart=/usr/local/bin/candor serve") {
		t.Errorf("%s: no ExecStart of candor serve", rel)
	}
}

// checkMetricsPolicy: the Candor pods admit the metrics port 9464 only
// from a namespace selector (Prometheus'), never from anywhere.
func checkMetricsPolicy(t *testing.T, rel string, m map[string]any) {
	t.Helper()
	spec := m["spec"].(map[string]any)
	sel, _ := spec["podSelector"].(map[string]any)["matchLabels"].(map[string]any)
	if sel["app"] != "candor" {
		t.Errorf("%s: the policy does not select the Candor pods: %v", rel, sel)
	}
	metricsRules := 0
	for _, r := range spec["ingress"].([]any) {
		r := r.(map[string]any)
		for _, p := range r["ports"].([]any) {
			if fmt.Sprint(p.(map[string]any)["port"]) != "9464" {
				continue
			}
			metricsRules++
			from, _ := r["from"].([]any)
			if len(from) == 0 {
				t.Errorf("%s: the metrics port is open to every source", rel)
			}
			for _, f := range from {
				if f.(map[string]any)["namespaceSelector"] == nil {
					t.Errorf("%s: the metrics port is open to %v, want Prometheus' namespace only", rel, f)
				}
			}
		}
	}
	if metricsRules != 1 {
		t.Errorf("%s: %d rules admit the metrics port, want one", rel, metricsRules)
	}
}

// checkScrapeTargets: the candor job scrapes the local cluster's metrics
// ports (deploy/local/cluster.sh), never its public ones.
func checkScrapeTargets(t *testing.T, rel, src string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join(deployDir, "local", "cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	public := regexp.MustCompile(`CLUSTER_PORT:-(\d+)`).FindSubmatch(script)
	metrics := regexp.MustCompile(`CLUSTER_METRICS_PORT:-(\d+)`).FindSubmatch(script)
	if public == nil || metrics == nil {
		t.Fatalf("deploy/local/cluster.sh: no CLUSTER_PORT or CLUSTER_METRICS_PORT default")
	}
	p, _ := strconv.Atoi(string(public[1]))
	mp, _ := strconv.Atoi(string(metrics[1]))
	var want []string
	for i := 1; i <= 6; i++ {
		want = append(want, fmt.Sprintf("127.0.0.1:%d", mp+i))
		if strings.Contains(src, fmt.Sprintf("127.0.0.1:%d", p+i)) {
			t.Errorf("%s: scrapes the public port %d", rel, p+i)
		}
	}
	for _, w := range want {
		if !strings.Contains(src, `"`+w+`"`) {
			t.Errorf("%s: does not scrape the cluster's metrics listener %s", rel, w)
		}
	}
}

// checkConf: nginx configurations balance their braces, end statements with
// ";" and keep no access log; Redis configurations are directive lines,
// with AOF on.
func checkConf(t *testing.T, rel, src string) {
	t.Helper()
	if strings.Contains(rel, "redis") {
		for i, line := range strings.Split(src, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !regexp.MustCompile(`^[a-z][a-z0-9-]* \S`).MatchString(line) {
				t.Errorf("%s:%d: not a directive: %q", rel, i+1, line)
			}
		}
		for _, d := range []string{"appendonly yes", "appendfsync always", "maxmemory-policy noeviction"} {
			if !strings.Contains(src, "\n"+d+"\n") {
				t.Errorf("%s: missing %q", rel, d)
			}
		}
		return
	}
	depth := 0
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(stripComment(line))
		if line == "" {
			continue
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth < 0 {
			t.Fatalf("%s:%d: unbalanced }", rel, i+1)
		}
		if !strings.HasSuffix(line, ";") && !strings.HasSuffix(line, "{") && !strings.HasSuffix(line, "}") {
			t.Errorf("%s:%d: statement without ;: %q", rel, i+1, line)
		}
	}
	if depth != 0 {
		t.Errorf("%s: unbalanced braces", rel)
	}
	if !strings.Contains(src, "access_log off;") {
		t.Errorf("%s: nginx keeps an access log (client addresses, /v?c= codes)", rel)
	}
	// Error messages from level "error" down carry the client's address
	// and request line.
	if m := regexp.MustCompile(`(?m)^error_log \S+ (\w+);`).FindStringSubmatch(src); m == nil || !slices.Contains([]string{"crit", "alert", "emerg"}, m[1]) {
		t.Errorf("%s: want a top-level error_log at level crit or above, got %v", rel, m)
	}
}
