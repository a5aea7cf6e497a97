package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/internal/testutil"
	"gopkg.in/yaml.v3"
)

type composeService struct {
	Image       string
	Build       *struct{ Context, Dockerfile, Target string }
	NetworkMode string   `yaml:"network_mode"`
	DependsOn   []string `yaml:"depends_on"`
	Ports       []string
	Volumes     []string
	Environment map[string]string
	Command     []string
	Secrets     []string
	StopGrace   string `yaml:"stop_grace_period"`
}

type composeFile struct {
	Name     string
	Services map[string]composeService
	Secrets  map[string]map[string]string
}

// composeEnv reads compose's .env (VAR=value lines) and expands
// ${VAR}, ${VAR:-x} and ${VAR:?msg} in s the way compose does.
func composeEnv(t *testing.T) func(string) string {
	t.Helper()
	data, err := os.ReadFile("compose/.env")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			env[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	re := regexp.MustCompile(`\$\{([A-Z_]+)(?:(:-|:\?)([^}]*))?\}`)
	return func(s string) string {
		return re.ReplaceAllStringFunc(s, func(m string) string {
			g := re.FindStringSubmatch(m)
			if v := env[g[1]]; v != "" {
				return v
			}
			if g[2] == ":-" {
				return g[3]
			}
			t.Errorf("compose.yaml needs %s, which .env does not set", g[1])
			return ""
		})
	}
}

// compose.yaml can't run here (no container engine, no registry for
// nginx, Redis, Prometheus and Grafana images), so it is checked the way
// `docker compose config` would and beyond: the structure, every file and
// build stage it names, the addresses that must agree between nginx's
// config, the sluice instances, Prometheus's targets, Grafana's data
// source and the upstreams, and each config with its real tool.
func TestComposeFile(t *testing.T) {
	data, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for k := range raw {
		if !slices.Contains([]string{"name", "services", "secrets"}, k) {
			t.Errorf("unexpected top-level key %q", k)
		}
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	want := []string{"grafana", "nginx", "prometheus", "redis", "sluice-a", "sluice-b", "upstream-a", "upstream-b"}
	var got []string
	for name := range c.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	expand := composeEnv(t)
	stages := parseDockerfile(t, "docker/Dockerfile")

	for name, s := range c.Services {
		if s.Image == "" {
			t.Errorf("%s: no image", name)
		}
		for _, d := range s.DependsOn {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, d)
			}
		}
		// One network namespace, nginx's: only nginx publishes ports,
		// and only on the host's loopback.
		if name == "nginx" {
			for _, p := range s.Ports {
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("nginx publishes %s beyond loopback", p)
				}
			}
		} else if s.NetworkMode != "service:nginx" || len(s.Ports) > 0 || !slices.Contains(s.DependsOn, "nginx") {
			t.Errorf("%s: network_mode %q, ports %v, depends_on %v: want service:nginx, none, nginx",
				name, s.NetworkMode, s.Ports, s.DependsOn)
		}
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s uses secret %s, which is not defined", name, sec)
			}
		}
		if b := s.Build; b != nil {
			if _, err := os.Stat(filepath.Join("compose", b.Context, b.Dockerfile)); err != nil {
				t.Errorf("%s builds with %s: %v", name, b.Dockerfile, err)
			}
			stage(t, stages, b.Target)
		}
	}
	if len(c.Services["nginx"].Ports) != 3 {
		t.Errorf("nginx ports %v, want the gateway, Grafana and Prometheus", c.Services["nginx"].Ports)
	}

	// nginx's shipped config lists exactly the two instances' listen
	// addresses, and its listen port is the one published.
	conf, err := os.ReadFile("nginx/sluice.conf")
	if err != nil {
		t.Fatal(err)
	}
	var nginxUpstreams []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server ([0-9.]+:[0-9]+)`).FindAllStringSubmatch(string(conf), -1) {
		nginxUpstreams = append(nginxUpstreams, m[1])
	}
	if !slices.Contains(c.Services["nginx"].Ports, "127.0.0.1:8000:80") || !strings.Contains(string(conf), "listen 80;") {
		t.Error("nginx listens on 80 and compose publishes it as 127.0.0.1:8000")
	}
	var listens, admins []string
	for _, name := range []string{"sluice-a", "sluice-b"} {
		s := c.Services[name]
		env := map[string]string{}
		var environ []string
		for k, v := range s.Environment {
			env[k] = expand(v)
			environ = append(environ, k+"="+env[k])
		}
		listens = append(listens, env["SLUICE_LISTEN"])
		admins = append(admins, env["SLUICE_ADMIN_LISTEN"])
		// The mounted config, with this instance's environment, is one
		// the real sluice accepts.
		var cfgFile string
		for _, v := range s.Volumes {
			if parts := strings.Split(v, ":"); parts[1] == env["SLUICE_CONFIG"] {
				cfgFile = filepath.Join("compose", parts[0])
			}
		}
		if cfgFile == "" {
			t.Fatalf("%s: SLUICE_CONFIG %s is not a mounted file", name, env["SLUICE_CONFIG"])
		}
		cmd := exec.Command(testutil.Binary(t, "sluice"), "validate", "-c", cfgFile)
		cmd.Env = append(os.Environ(), environ...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: sluice validate: %v\n%s", name, err, out)
		}
		// Longer than the drain (server.shutdown_timeout, 15s by default).
		if s.StopGrace != "20s" {
			t.Errorf("%s: stop_grace_period %q, want 20s (above the 15s drain)", name, s.StopGrace)
		}
		if s.Build == nil || s.Build.Target != "sluice" {
			t.Errorf("%s is not built from the Dockerfile's sluice stage", name)
		}
	}
	if slices.Sort(nginxUpstreams); !slices.Equal(nginxUpstreams, listens) {
		t.Errorf("nginx's upstream sluice lists %v, the instances listen on %v", nginxUpstreams, listens)
	}

	// Prometheus: the shipped scrape job, with both instances' admin
	// addresses as targets and the password from the secret; the rules
	// mounted beside it. promtool accepts it.
	var promC, promShipped struct {
		Global        map[string]string
		RuleFiles     []string         `yaml:"rule_files"`
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	for path, into := range map[string]any{"compose/prometheus.yml": &promC, "prometheus/prometheus.yml": &promShipped} {
		data, err := os.ReadFile(path)
		if err != nil || yaml.Unmarshal(data, into) != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	targets := func(job map[string]any) []string {
		var out []string
		for _, sc := range job["static_configs"].([]any) {
			for _, tg := range sc.(map[string]any)["targets"].([]any) {
				out = append(out, tg.(string))
			}
		}
		slices.Sort(out)
		return out
	}
	job, shipped := promC.ScrapeConfigs[0], promShipped.ScrapeConfigs[0]
	if got := targets(job); !slices.Equal(got, admins) {
		t.Errorf("Prometheus scrapes %v, the instances' admin listeners are %v", got, admins)
	}
	if pw := job["basic_auth"].(map[string]any)["password_file"]; pw != "/run/secrets/sluice_admin_password" {
		t.Errorf("password_file %v, want the compose secret", pw)
	}
	for _, k := range []string{"job_name", "metrics_path"} {
		if job[k] != shipped[k] {
			t.Errorf("compose's scrape job %s %v, the shipped one's %v", k, job[k], shipped[k])
		}
	}
	if !reflect.DeepEqual(promC.RuleFiles, promShipped.RuleFiles) {
		t.Errorf("rule_files %v, shipped %v", promC.RuleFiles, promShipped.RuleFiles)
	}
	promSvc := c.Services["prometheus"]
	if !slices.Contains(promSvc.Volumes, "../prometheus/sluice-alerts.yml:/etc/prometheus/sluice-alerts.yml:ro") ||
		!slices.Contains(promSvc.Command, "--web.listen-address=:9090") ||
		c.Secrets["sluice_admin_password"]["environment"] != "SLUICE_ADMIN_PASSWORD" {
		t.Errorf("prometheus service %+v, secrets %v", promSvc, c.Secrets)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		dir := t.TempDir()
		pw := filepath.Join(dir, "pw")
		_ = os.WriteFile(pw, []byte("demo"), 0o600)
		rules, _ := filepath.Abs("prometheus/sluice-alerts.yml")
		data, _ := os.ReadFile("compose/prometheus.yml")
		s := strings.NewReplacer("/run/secrets/sluice_admin_password", pw, "- sluice-alerts.yml", "- "+rules).Replace(string(data))
		path := filepath.Join(dir, "prometheus.yml")
		_ = os.WriteFile(path, []byte(s), 0o600)
		run(t, ".", promtool, "check", "config", path)
	} else {
		needTool(t, "promtool", "Debian package prometheus")
	}

	// Grafana: the data source is that Prometheus; the dashboard provider
	// reads the directory deploy/grafana is mounted at.
	var ds struct {
		Datasources []struct {
			Type, URL string
			IsDefault bool `yaml:"isDefault"`
		}
	}
	var prov struct {
		Providers []struct{ Options struct{ Path string } }
	}
	for path, into := range map[string]any{"compose/grafana/datasource.yaml": &ds, "compose/grafana/dashboards.yaml": &prov} {
		data, err := os.ReadFile(path)
		if err != nil || yaml.Unmarshal(data, into) != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://127.0.0.1:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("Grafana data source %+v", ds.Datasources)
	}
	if len(prov.Providers) != 1 || !slices.Contains(c.Services["grafana"].Volumes, "../grafana:"+prov.Providers[0].Options.Path+":ro") {
		t.Errorf("dashboard provider path %+v is not where ../grafana is mounted", prov.Providers)
	}
	if _, err := os.Stat("grafana/sluice-dashboard.json"); err != nil {
		t.Error(err)
	}

	// The upstreams and Redis listen where the sluice config points.
	cfg, err := os.ReadFile("compose/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"upstream-a", "upstream-b"} {
		cmd := c.Services[svc].Command
		i := slices.Index(cmd, "-addr")
		if i < 0 || !strings.Contains(string(cfg), `"http://`+cmd[i+1]+`"`) {
			t.Errorf("%s listens on %v, which sluice.yaml's targets do not name", svc, cmd)
		}
		if c.Services[svc].Build == nil || c.Services[svc].Build.Target != "upstream" {
			t.Errorf("%s is not built from the Dockerfile's upstream stage", svc)
		}
	}
	redis := c.Services["redis"].Command
	if i := slices.Index(redis, "--port"); i < 0 || !strings.Contains(string(cfg), `"127.0.0.1:`+redis[i+1]+`"`) {
		t.Errorf("redis %v is not at sluice.yaml's redis address", redis)
	}
}
