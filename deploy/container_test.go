package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// needTool finds a tool `make deps` installs. Where it is missing the
// test is skipped with the reason, except under CI (CI set), where a
// missing tool is a failure: a skip there would count as a pass.
func needTool(t *testing.T, name, installedBy string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", goBin()} {
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: `make deps` installs it (%s)", name, installedBy)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func goBin() string {
	if b := os.Getenv("GOBIN"); b != "" {
		return b
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// dockerStage is one FROM ... AS name stage of a Dockerfile: its base and
// its instructions, continuation lines joined, comments dropped.
type dockerStage struct {
	Name, From string
	Lines      []string
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur string
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cur = cur+line, ""
		f := strings.Fields(line)
		switch {
		case strings.EqualFold(f[0], "FROM"):
			st := dockerStage{From: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.Name = f[3]
			}
			stages = append(stages, st)
		case len(stages) > 0:
			stages[len(stages)-1].Lines = append(stages[len(stages)-1].Lines, line)
		}
	}
	return stages
}

func stage(t *testing.T, stages []dockerStage, name string) dockerStage {
	t.Helper()
	for _, s := range stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return dockerStage{}
}

func instr(s dockerStage, kw string) []string {
	var out []string
	for _, l := range s.Lines {
		if f := strings.Fields(l); strings.EqualFold(f[0], kw) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

var numericUser = regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`)

// The Dockerfile's rules, checked on its text (this machine can't pull
// the golang base image, so the build stage never runs here): a static,
// trimmed, version-stamped build; final images FROM scratch as a numeric
// non-root user; a HEALTHCHECK through sluice health; the ports; every
// file copied from the build context exists.
func TestDockerfileRules(t *testing.T) {
	stages := parseDockerfile(t, "docker/Dockerfile")
	if last := stages[len(stages)-1]; last.Name != "sluice" {
		t.Errorf("the last stage (the default target) is %q, want sluice", last.Name)
	}
	build := stage(t, stages, "build")
	if !strings.HasPrefix(build.From, "golang:") {
		t.Errorf("build stage FROM %s, want golang:", build.From)
	}
	runs := strings.Join(instr(build, "RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0 go build -trimpath", "-X main.version=${VERSION}", "./cmd/sluice", "./bench/upstream"} {
		if !strings.Contains(runs, want) {
			t.Errorf("build stage does not run %q", want)
		}
	}
	if n := strings.Count(runs, "go build"); n != strings.Count(runs, "CGO_ENABLED=0 go build -trimpath") {
		t.Errorf("a go build without CGO_ENABLED=0 and -trimpath:\n%s", runs)
	}
	for _, name := range []string{"sluice", "upstream"} {
		s := stage(t, stages, name)
		if s.From != "scratch" && !strings.HasPrefix(s.From, "gcr.io/distroless/static") {
			t.Errorf("stage %s FROM %s, want scratch or distroless static", name, s.From)
		}
		users := instr(s, "USER")
		if len(users) != 1 || !numericUser.MatchString(users[0]) {
			t.Errorf("stage %s USER %q, want one numeric non-root UID[:GID]", name, users)
		}
		if len(instr(s, "RUN")) > 0 {
			t.Errorf("stage %s has RUN: a scratch image has no shell", name)
		}
		for _, e := range instr(s, "ENTRYPOINT") {
			if !strings.HasPrefix(e, "[") {
				t.Errorf("stage %s ENTRYPOINT %s is shell form: scratch has no shell", name, e)
			}
		}
	}
	final := stage(t, stages, "sluice")
	hc := instr(final, "HEALTHCHECK")
	if len(hc) != 1 || !strings.Contains(hc[0], `CMD ["/sluice", "health"]`) {
		t.Errorf("HEALTHCHECK %q, want exec form of /sluice health", hc)
	}
	if ex := instr(final, "EXPOSE"); len(ex) != 1 || ex[0] != "8080 9901" {
		t.Errorf("EXPOSE %q, want 8080 9901", ex)
	}
	env := strings.Join(instr(final, "ENV"), " ")
	for _, want := range []string{"SLUICE_CONFIG=/etc/sluice/sluice.yaml", "SLUICE_LISTEN=:8080", "SLUICE_ADMIN_LISTEN=:9901"} {
		if !strings.Contains(env, want) {
			t.Errorf("ENV lacks %s", want)
		}
	}
	root := testutil.ModuleRoot(t)
	for _, s := range stages {
		for _, c := range append(instr(s, "COPY"), instr(s, "ADD")...) {
			f := strings.Fields(c)
			if strings.HasPrefix(f[0], "--from=") {
				continue
			}
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") || src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("stage %s copies %s from the context: %v", s.Name, src, err)
				}
			}
		}
	}
}

// containerfile turns a final stage of the Dockerfile into a Containerfile
// over a context dir: each COPY --from=build takes the file the test
// staged (from builds), each other COPY the file from the repository.
// Every other instruction stays as it is.
func containerfile(t *testing.T, s dockerStage, ctxDir string, builds map[string]string) {
	t.Helper()
	root := testutil.ModuleRoot(t)
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", s.From)
	for i, l := range s.Lines {
		f := strings.Fields(l)
		if !strings.EqualFold(f[0], "COPY") {
			b.WriteString(l + "\n")
			continue
		}
		var flags []string
		var from string
		args := f[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			if v, ok := strings.CutPrefix(args[0], "--from="); ok {
				from = v
			} else {
				flags = append(flags, args[0])
			}
			args = args[1:]
		}
		if len(args) != 2 {
			t.Fatalf("COPY %q: the test handles one source and one destination", l)
		}
		src, dst := args[0], args[1]
		local := filepath.Join(root, src)
		if from != "" {
			var ok bool
			if local, ok = builds[src]; !ok {
				t.Fatalf("COPY --from=%s %s: the test does not know how to stage it", from, src)
			}
		}
		name := fmt.Sprintf("f%d", i)
		if err := exec.Command("cp", "-a", local, filepath.Join(ctxDir, name)).Run(); err != nil {
			t.Fatalf("staging %s: %v", local, err)
		}
		fmt.Fprintf(&b, "COPY %s %s %s\n", strings.Join(flags, " "), name, dst)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// podman runs podman with args and returns its trimmed stdout.
func podman(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, errb.String())
	}
	return strings.TrimSpace(string(out))
}

// The images built from the Dockerfile's final stages, from binaries
// built here as its build stage builds them, run with podman: the demo
// upstream container answers, the sluice container answers /ready on its
// admin port and proxies to it, runs as UID 65532, passes its own
// HEALTHCHECK (sluice health), and exits 0 on podman stop (SIGTERM
// drain).
//
// How the containers run here: podman's default crun refuses this
// machine's hybrid cgroup v1/v2 layout, so runc (Debian's) is the
// runtime; the sandbox refuses setrlimit for podman's default limits, so
// nofile is the process's own hard limit and nproc a small fixed one; and
// --network host, so every byte stays on 127.0.0.1 (a bridge network
// would route through a private-range address).
func TestContainerImageRuns(t *testing.T) {
	pm := needTool(t, "podman", "Debian package podman")
	needTool(t, "runc", "Debian package runc")
	stages := parseDockerfile(t, "docker/Dockerfile")

	// The build stage's go build lines, run here.
	dir := t.TempDir()
	root := testutil.ModuleRoot(t)
	for _, b := range []struct{ out, pkg, ldflags string }{
		{"sluice", "./cmd/sluice", "-s -w -X main.version=container-test"},
		{"upstream", "./bench/upstream", "-s -w"},
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", b.ldflags, "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	builds := map[string]string{
		"/out/sluice":                        filepath.Join(dir, "sluice"),
		"/out/upstream":                      filepath.Join(dir, "upstream"),
		"/out/state":                         filepath.Join(dir, "state"),
		"/etc/ssl/certs/ca-certificates.crt": "/etc/ssl/certs/ca-certificates.crt",
	}

	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	images := map[string]string{}
	for _, name := range []string{"sluice", "upstream"} {
		ctxDir := filepath.Join(dir, "ctx-"+name)
		if err := os.Mkdir(ctxDir, 0o755); err != nil {
			t.Fatal(err)
		}
		containerfile(t, stage(t, stages, name), ctxDir, builds)
		img := "localhost/sluice-test-" + name + ":" + tag
		// --format docker: the OCI image format has no HEALTHCHECK, and
		// podman (buildah) drops it from an OCI image with a warning.
		podman(t, pm, "build", "-q", "--format", "docker", "-f", filepath.Join(ctxDir, "Containerfile"), "-t", img, ctxDir)
		images[name] = img
		t.Cleanup(func() { _ = exec.Command(pm, "rmi", "-f", img).Run() })
	}

	// The image config the Dockerfile asked for.
	cfg := podman(t, pm, "image", "inspect", "--format",
		"{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{json .Config.ExposedPorts}}|{{json .Config.Entrypoint}}", images["sluice"])
	for _, want := range []string{"65532:65532|", `["CMD","/sluice","health"]`, `"8080/tcp"`, `"9901/tcp"`, `["/sluice"]`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("sluice image config %s lacks %s", cfg, want)
		}
	}

	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	runArgs := []string{"--runtime", "runc", "run", "-d", "--network", "host",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Max, nofile.Max), "--ulimit", "nproc=4096:4096"}
	start := func(name string, env []string, img string, args ...string) string {
		t.Helper()
		ctr := "sluice-test-" + name + "-" + tag
		a := append(append([]string{}, runArgs...), "--name", ctr)
		for _, e := range env {
			a = append(a, "-e", e)
		}
		podman(t, pm, append(append(a, img), args...)...)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := exec.Command(pm, "logs", ctr).CombinedOutput()
				t.Logf("%s container's output:\n%s", name, out)
			}
			_ = exec.Command(pm, "rm", "-f", "-t", "0", ctr).Run()
		})
		return ctr
	}

	upAddr := testutil.DeadAddr(t)
	start("upstream", nil, images["upstream"], "-addr", upAddr, "-name", "in-a-container")
	listen, admin := testutil.DeadAddr(t), testutil.DeadAddr(t)
	// The image's own config (examples/sluice.yaml) and ENV; only the
	// addresses are moved to free loopback ports (host network).
	ctr := start("sluice", []string{"SLUICE_LISTEN=" + listen, "SLUICE_ADMIN_LISTEN=" + admin,
		"SLUICE_ADMIN_PASSWORD=container-test", "DEMO_UPSTREAM=" + upAddr}, images["sluice"])

	testutil.WaitFor(t, "the sluice container's /ready to answer 200", func() bool {
		code, _, _, err := get("http://" + admin + "/ready")
		return err == nil && code == 200
	})
	code, body, hdr, err := get("http://" + listen + "/api/users/42")
	if err != nil || code != 200 || !strings.Contains(body, `"in-a-container"`) || hdr.Get("X-Served-By") != "sluice" {
		t.Errorf("GET /api/users/42 through the container: %d %v %q %v", code, err, body, hdr)
	}
	if code, body, _, _ := get("http://" + admin + "/info"); code != 401 {
		t.Errorf("admin /info without the password: %d %s", code, body)
	}

	// The process in the container runs as the image's USER.
	pid := podman(t, pm, "inspect", "--format", "{{.State.Pid}}", ctr)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status); m == nil || string(m[1]) != "65532" {
		t.Errorf("sluice runs as uid %s, want 65532", m)
	}

	// The image's HEALTHCHECK, run by podman (no systemd timer here, so
	// once, by hand): sluice health inside the container, exit 0.
	if out, err := exec.Command(pm, "healthcheck", "run", ctr).CombinedOutput(); err != nil {
		t.Errorf("podman healthcheck run: %v\n%s", err, out)
	}

	// podman stop sends STOPSIGNAL (SIGTERM): sluice drains and exits 0.
	podman(t, pm, "stop", "-t", "20", ctr)
	if code := podman(t, pm, "inspect", "--format", "{{.State.ExitCode}}", ctr); code != "0" {
		t.Errorf("sluice exited %s after podman stop, want 0", code)
	}
	// and the health check now fails.
	if out, err := exec.Command(pm, "healthcheck", "run", ctr).CombinedOutput(); err == nil {
		t.Errorf("podman healthcheck run on a stopped container passed:\n%s", out)
	}
}

func get(url string) (int, string, http.Header, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header, nil
}

// ignored reports whether a .dockerignore pattern list excludes rel (a
// slash path in the context). It handles the forms the file uses: a
// path, which excludes itself and everything under it, and "**/glob",
// which matches any path component sequence ending in glob.
func ignored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range patterns {
		if rest, ok := strings.CutPrefix(p, "**/"); ok {
			for i := range parts {
				if m, _ := filepath.Match(rest, parts[i]); m {
					return true
				}
			}
			continue
		}
		for i := 1; i <= len(parts); i++ {
			if m, _ := filepath.Match(p, strings.Join(parts[:i], "/")); m {
				return true
			}
		}
	}
	return false
}

// The build context the Dockerfile gets, the repository less what
// Dockerfile.dockerignore excludes, is enough for its go build lines,
// and leaves out history and local builds.
func TestDockerContextBuilds(t *testing.T) {
	data, err := os.ReadFile("docker/Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, want := range []string{".git", "bin"} {
		if !ignored(patterns, want) {
			t.Errorf("the context includes %s", want)
		}
	}
	root := testutil.ModuleRoot(t)
	ctx := t.TempDir()
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		if ignored(patterns, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(ctx, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(ctx, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum", "examples/sluice.yaml"} {
		if _, err := os.Stat(filepath.Join(ctx, f)); err != nil {
			t.Errorf("the context lacks %s, which the Dockerfile copies", f)
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", t.TempDir(), "./cmd/sluice", "./bench/upstream")
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go build in the Docker build context: %v\n%s", err, out)
	}
}
