package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

const chart = "helm/sluice"

// kubeVersion is the Kubernetes version the chart is rendered for: the
// oldest it supports (Chart.yaml kubeVersion; preStop sleep is 1.30's).
const kubeVersion = "1.30.0"

// helm runs the helm binary `make deps` installs (go install).
func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin := needTool(t, "helm", "go install helm.sh/helm/v3/cmd/helm")
	cmd := exec.Command(bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, errb.String())
	}
	return string(out)
}

// rendered is helm template's output, one typed value per kind. Each
// manifest is decoded strictly into the k8s.io/api type of its
// apiVersion and kind: an unknown or misspelt field, or a value of the
// wrong type, fails the test. (The JSON schemas kubeconform uses can't be
// downloaded here; the Go types are what the API server's own decoding
// is generated from.)
type rendered struct {
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	Secret         *corev1.Secret
	PDB            *policyv1.PodDisruptionBudget
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	ServiceMonitor map[string]any
	Kinds          []string
}

func strictDecode(t *testing.T, doc map[string]any, into any) {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s %s does not decode as %T: %v", doc["apiVersion"], doc["kind"], into, err)
	}
}

func renderChart(t *testing.T, args ...string) rendered {
	t.Helper()
	out := helm(t, append([]string{"template", "rel", chart, "--namespace", "edge", "--kube-version", kubeVersion}, args...)...)
	var r rendered
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output is not YAML: %v", err)
		}
		if doc == nil {
			continue
		}
		kind := fmt.Sprint(doc["apiVersion"], " ", doc["kind"])
		r.Kinds = append(r.Kinds, kind)
		switch kind {
		case "apps/v1 Deployment":
			r.Deployment = new(appsv1.Deployment)
			strictDecode(t, doc, r.Deployment)
		case "v1 Service":
			r.Service = new(corev1.Service)
			strictDecode(t, doc, r.Service)
		case "v1 ConfigMap":
			r.ConfigMap = new(corev1.ConfigMap)
			strictDecode(t, doc, r.ConfigMap)
		case "v1 Secret":
			r.Secret = new(corev1.Secret)
			strictDecode(t, doc, r.Secret)
		case "policy/v1 PodDisruptionBudget":
			r.PDB = new(policyv1.PodDisruptionBudget)
			strictDecode(t, doc, r.PDB)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			r.HPA = new(autoscalingv2.HorizontalPodAutoscaler)
			strictDecode(t, doc, r.HPA)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.ServiceMonitor = doc
		default:
			t.Errorf("the chart renders %s, which this test does not check", kind)
		}
	}
	return r
}

func TestHelmChartLints(t *testing.T) {
	helm(t, "lint", "--strict", chart, "--kube-version", kubeVersion)
	helm(t, "lint", "--strict", chart, "--kube-version", kubeVersion,
		"--set", "serviceMonitor.enabled=true,autoscaling.requestsPerSecond=5000,admin.existingSecret=mine")
}

// The rendered manifests fit together: selectors match the pod's labels,
// probes and the Service target the ports the container names, the
// ConfigMap is mounted as a directory (so its updates reach sluice), the
// config in it is one the real sluice accepts, and the pod runs as the
// image's user.
func TestHelmChartRenders(t *testing.T) {
	r := renderChart(t)
	for name, v := range map[string]any{"Deployment": r.Deployment, "Service": r.Service, "ConfigMap": r.ConfigMap,
		"Secret": r.Secret, "PodDisruptionBudget": r.PDB, "HorizontalPodAutoscaler": r.HPA} {
		if v == nil || fmt.Sprint(v) == "<nil>" {
			t.Fatalf("no %s rendered; kinds: %v", name, r.Kinds)
		}
	}
	if r.ServiceMonitor != nil {
		t.Error("a ServiceMonitor is rendered by default: it needs the Prometheus Operator's CRD")
	}
	d := r.Deployment
	pod := d.Spec.Template
	for k, v := range d.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("the Deployment selects %s=%s, the pod has %q", k, v, pod.Labels[k])
		}
	}
	for _, sel := range []map[string]string{r.Service.Spec.Selector, r.PDB.Spec.Selector.MatchLabels} {
		for k, v := range sel {
			if pod.Labels[k] != v {
				t.Errorf("a selector wants %s=%s, the pod has %q", k, v, pod.Labels[k])
			}
		}
	}
	if d.Spec.Replicas != nil {
		t.Error("replicas set while the HPA scales the Deployment: every upgrade would reset it")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["admin"] != 9901 {
		t.Errorf("container ports %v, want http 8080 and admin 9901", ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		want := map[string]string{"readiness": "/ready", "liveness": "/health"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v, want GET %s on the admin port", name, p, want)
		}
	}
	for _, sp := range r.Service.Spec.Ports {
		if _, ok := ports[sp.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %s, which the container does not name", sp.Name, sp.TargetPort.String())
		}
	}

	// The config: mounted as a directory from the ConfigMap, and valid.
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.Name == "config" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || mount.SubPath != "" || mount.MountPath != "/etc/sluice" {
		t.Errorf("config mount %+v: want /etc/sluice, the whole ConfigMap, no subPath (a subPath never updates)", mount)
	}
	if strings.Join(c.Args, " ") != "serve -c /etc/sluice/sluice.yaml" {
		t.Errorf("args %q", c.Args)
	}
	cfgText, ok := r.ConfigMap.Data["sluice.yaml"]
	if !ok {
		t.Fatalf("ConfigMap keys %v, want sluice.yaml", r.ConfigMap.Data)
	}
	cfgPath := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Binary(t, "sluice"), "validate", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "SLUICE_ADMIN_PASSWORD=from-the-secret")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sluice validate on the chart's config: %v\n%s", err, out)
	}
	var cfg struct {
		Listen string
		Admin  struct{ Listen, Password string }
		Server struct {
			ShutdownTimeout string `yaml:"shutdown_timeout"`
		}
	}
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || cfg.Admin.Listen != ":9901" || cfg.Admin.Password != "${SLUICE_ADMIN_PASSWORD}" {
		t.Errorf("config listens on %q, admin %q, password %q: want the container's ports and the Secret's env",
			cfg.Listen, cfg.Admin.Listen, cfg.Admin.Password)
	}
	var pwEnv *corev1.EnvVar
	for i, e := range c.Env {
		if e.Name == "SLUICE_ADMIN_PASSWORD" {
			pwEnv = &c.Env[i]
		}
	}
	if pwEnv == nil || pwEnv.ValueFrom == nil || pwEnv.ValueFrom.SecretKeyRef == nil ||
		pwEnv.ValueFrom.SecretKeyRef.Name != r.Secret.Name || pwEnv.ValueFrom.SecretKeyRef.Key != "admin-password" {
		t.Errorf("SLUICE_ADMIN_PASSWORD %+v, want the Secret %s's admin-password", pwEnv, r.Secret.Name)
	}
	if len(r.Secret.Data["admin-password"]) < 16 {
		t.Errorf("generated admin password %q is short", r.Secret.Data["admin-password"])
	}

	// Draining fits in the grace period.
	drain, err := time.ParseDuration(cfg.Server.ShutdownTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var sleep time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if sleep == 0 {
		t.Error("no preStop sleep: the pod gets SIGTERM while still in the Service's endpoints")
	}
	if grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second; grace <= drain+sleep {
		t.Errorf("terminationGracePeriodSeconds %v is not above the preStop sleep %v + shutdown_timeout %v", grace, sleep, drain)
	}

	// The pod runs as the image's numeric USER, locked down.
	stages := parseDockerfile(t, "docker/Dockerfile")
	user := instr(stage(t, stages, "sluice"), "USER")[0]
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil ||
		fmt.Sprintf("%d:%d", *psc.RunAsUser, *psc.RunAsGroup) != user {
		t.Errorf("pod securityContext %+v, want runAsNonRoot as %s", psc, user)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext %+v", sc)
	}

	// Resources sized from bench/README.md: a CPU request, a memory
	// request and limit, no CPU limit (throttling).
	res := c.Resources
	if res.Requests.Cpu().MilliValue() < 250 || res.Requests.Memory().Value() < 32<<20 ||
		res.Limits.Memory().Value() <= res.Requests.Memory().Value() || !res.Limits.Cpu().IsZero() {
		t.Errorf("resources %+v", res)
	}

	h := r.HPA
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name ||
		h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || len(h.Spec.Metrics) != 1 ||
		h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
		h.Spec.Metrics[0].Resource.Target.AverageUtilization == nil {
		t.Errorf("HPA %+v, want CPU utilization on the Deployment, at least 2 replicas", h.Spec)
	}
	if r.PDB.Spec.MaxUnavailable == nil || r.PDB.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", r.PDB.Spec.MaxUnavailable)
	}
}

// The optional parts: requests per second in the HPA (custom metrics),
// the ServiceMonitor scraping the admin port with the Secret's
// credentials, an existing Secret instead of the chart's, and a fixed
// replica count without the HPA.
func TestHelmChartOptions(t *testing.T) {
	r := renderChart(t, "--set", "serviceMonitor.enabled=true,autoscaling.requestsPerSecond=5000")
	if len(r.HPA.Spec.Metrics) != 2 || r.HPA.Spec.Metrics[1].Pods == nil ||
		r.HPA.Spec.Metrics[1].Pods.Metric.Name != "sluice_requests_per_second" ||
		r.HPA.Spec.Metrics[1].Pods.Target.AverageValue.Value() != 5000 {
		t.Errorf("HPA metrics %+v, want CPU and 5000 sluice_requests_per_second per pod", r.HPA.Spec.Metrics)
	}
	sm := r.ServiceMonitor
	if sm == nil {
		t.Fatal("serviceMonitor.enabled rendered no ServiceMonitor")
	}
	var spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Endpoints []struct {
			Port, Path string
			BasicAuth  struct {
				Username, Password struct{ Name, Key string }
			} `yaml:"basicAuth"`
		}
	}
	data, _ := yaml.Marshal(sm["spec"])
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	for k, v := range spec.Selector.MatchLabels {
		if r.Service.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, the Service has %q", k, v, r.Service.Labels[k])
		}
	}
	if len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != "admin" || spec.Endpoints[0].Path != "/metrics" ||
		spec.Endpoints[0].BasicAuth.Password.Name != r.Secret.Name || spec.Endpoints[0].BasicAuth.Password.Key != "admin-password" ||
		spec.Endpoints[0].BasicAuth.Username.Key != "admin-username" || r.Secret.Data["admin-username"] == nil {
		t.Errorf("ServiceMonitor endpoints %+v", spec.Endpoints)
	}
	if p := r.Service.Spec.Ports; len(p) != 2 || p[1].Name != "admin" {
		t.Errorf("Service ports %+v: the ServiceMonitor needs one named admin", p)
	}

	r = renderChart(t, "--set", "admin.existingSecret=ops-sluice,autoscaling.enabled=false,podDisruptionBudget.enabled=false,replicaCount=3")
	if r.Secret != nil || r.HPA != nil || r.PDB != nil {
		t.Errorf("rendered %v: want no Secret, HPA or PDB", r.Kinds)
	}
	if r.Deployment.Spec.Replicas == nil || *r.Deployment.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3 without the HPA", r.Deployment.Spec.Replicas)
	}
	if ref := r.Deployment.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef; ref.Name != "ops-sluice" {
		t.Errorf("password from %s, want the existing Secret ops-sluice", ref.Name)
	}
}

// kubeletSwap lays out or updates dir as the kubelet does a ConfigMap
// volume: the data in a new ..<version> directory, ..data pointed at it
// through a symlink renamed over the old one, and each key a symlink to
// ..data/<key> made once.
func kubeletSwap(t *testing.T, dir, version, key, content string) {
	t.Helper()
	v := filepath.Join(dir, ".."+version)
	if err := os.Mkdir(v, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v, key), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(v), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, key)); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)); err != nil {
			t.Fatal(err)
		}
	}
}

// A helm upgrade that changes values.config reaches a running sluice
// without a restart: the chart's ConfigMap, laid out and then updated
// the way the kubelet updates a ConfigMap volume, is reloaded by the real
// binary reading it at the path the Deployment gives it.
func TestHelmConfigMapUpdateReloads(t *testing.T) {
	listen, admin := testutil.DeadAddr(t), testutil.DeadAddr(t)
	configMap := func(route string) string {
		r := renderChart(t, "--set", "config.listen="+listen+",config.admin.listen="+admin+",config.routes[0].name="+route+
			",config.routes[0].upstream=demo,config.routes[0].match.prefix=/api/")
		return r.ConfigMap.Data["sluice.yaml"]
	}
	dir := t.TempDir()
	kubeletSwap(t, dir, "2026_12_02_01_00_00.1", "sluice.yaml", configMap("before"))
	cmd := exec.Command(testutil.Binary(t, "sluice"), "serve", "-c", filepath.Join(dir, "sluice.yaml"))
	cmd.Env = append(os.Environ(), "SLUICE_ADMIN_PASSWORD=pw")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sluice log:\n%s", log.String())
		}
	})
	routes := func() string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/info", nil)
		req.SetBasicAuth("admin", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	testutil.WaitFor(t, "sluice to serve the first ConfigMap", func() bool {
		return strings.Contains(routes(), `"name": "before"`)
	})
	kubeletSwap(t, dir, "2026_12_02_01_05_00.2", "sluice.yaml", configMap("after"))
	testutil.WaitFor(t, "sluice to reload the swapped ConfigMap", func() bool {
		info := routes()
		return strings.Contains(info, `"name": "after"`) && strings.Contains(info, `"reloads": 1`)
	})
}
