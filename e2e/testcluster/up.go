package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// `testcluster up`: a small supervisor that runs etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as four child processes of this same binary.

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type upConfig struct {
	dir           string
	startTimeout  time.Duration
	stopTimeout   time.Duration
	verbosity     int
	apiserverPort int
	etcdArgs      multiFlag
	apiserverArgs multiFlag
	kcmArgs       multiFlag
	schedArgs     multiFlag
}

// Paths that `up` owns inside --dir; they are removed at start so every run is a fresh cluster.
var ownedPaths = []string{
	"etcd", "pki", "logs", "apiserver", "kubeconfig", "controller-manager.kubeconfig",
	"scheduler.kubeconfig", "tokens.csv", "admin.token", "env", "ready", "up.pid",
}

func runUp(args []string) int {
	var cfg upConfig
	fs := flag.NewFlagSet("testcluster up", flag.ContinueOnError)
	fs.StringVar(&cfg.dir, "dir", "/tmp/testcluster", "state directory: pki/, etcd/, logs/, kubeconfig, env, ready (recreated on every run)")
	fs.DurationVar(&cfg.startTimeout, "timeout", 5*time.Minute, "give up if the control plane is not ready within this time")
	fs.DurationVar(&cfg.stopTimeout, "stop-timeout", 20*time.Second, "per component: SIGKILL if it has not exited this long after SIGTERM")
	fs.IntVar(&cfg.verbosity, "v", 0, "log verbosity (--v) of the Kubernetes components")
	fs.IntVar(&cfg.apiserverPort, "apiserver-port", 0, "apiserver secure port on 127.0.0.1 (0: a free port)")
	fs.Var(&cfg.etcdArgs, "etcd-arg", "extra etcd flag, e.g. --etcd-arg=--quota-backend-bytes=8589934592 (repeatable)")
	fs.Var(&cfg.apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--feature-gates=X=true (repeatable)")
	fs.Var(&cfg.kcmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	fs.Var(&cfg.schedArgs, "scheduler-arg", "extra kube-scheduler flag (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "testcluster up: unexpected arguments %q\n", fs.Args())
		return 2
	}

	log.SetPrefix("testcluster up: ")
	log.SetFlags(log.Ltime | log.Lmicroseconds)

	// Children are started with Pdeathsig=SIGKILL (they die if this process is killed with SIGKILL).
	// The kernel sends it when the *thread* that forked them exits, so fork from the locked main thread.
	runtime.LockOSThread()

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stopSignals()

	s, err := newSupervisor(cfg)
	if err != nil {
		log.Printf("error: %v", err)
		return 1
	}
	code := 0
	if err := s.bringUp(ctx); err != nil {
		if ctx.Err() != nil {
			log.Printf("interrupted during startup")
		} else {
			log.Printf("error: %v", err)
			code = 1
		}
	} else {
		select {
		case <-ctx.Done():
			log.Printf("signal received, stopping the control plane")
		case c := <-s.exited:
			log.Printf("error: %s exited unexpectedly (%v); last lines of %s:\n%s", c.name, c.err, c.logPath, tail(c.logPath, 30))
			code = 1
		}
	}
	s.shutdown()
	return code
}

type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

type supervisor struct {
	cfg      upConfig
	dir      string
	exe      string
	pki      string
	children []*child
	exited   chan *child
}

func newSupervisor(cfg upConfig) (*supervisor, error) {
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find own executable: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "up.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			return nil, fmt.Errorf("%s is in use by a running testcluster (pid %d)", dir, pid)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, p := range ownedPaths {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"pki", "logs", "etcd", "apiserver"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "up.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, err
	}
	return &supervisor{cfg: cfg, dir: dir, exe: exe, pki: filepath.Join(dir, "pki"), exited: make(chan *child, 8)}, nil
}

func (s *supervisor) path(p ...string) string { return filepath.Join(append([]string{s.dir}, p...)...) }

// freePorts returns n distinct free TCP ports on 127.0.0.1 (all listeners are held until all are chosen).
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *supervisor) bringUp(ctx context.Context) error {
	t0 := time.Now()
	deadline := t0.Add(s.cfg.startTimeout)

	// --- PKI and credentials -------------------------------------------------------------------
	ca, err := newCA("tessera-testcluster-ca")
	if err != nil {
		return err
	}
	caCrt, caKey, err := ca.write(s.pki, "ca")
	if err != nil {
		return err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	serving := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

	apiCert, err := ca.issue("kube-apiserver", nil,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		append(loopback, net.ParseIP("10.96.0.1")), serving)
	if err != nil {
		return err
	}
	apiCrt, apiKey, err := apiCert.write(s.pki, "apiserver")
	if err != nil {
		return err
	}
	// Front proxy (request-header authentication): lets the controller-manager and scheduler delegate
	// authentication to the apiserver without errors, and makes aggregated API servers usable.
	frontProxyCA, err := newCA("tessera-testcluster-front-proxy-ca")
	if err != nil {
		return err
	}
	frontProxyCACrt, _, err := frontProxyCA.write(s.pki, "front-proxy-ca")
	if err != nil {
		return err
	}
	frontProxyClient, err := frontProxyCA.issue("front-proxy-client", nil, nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return err
	}
	proxyCrt, proxyKey, err := frontProxyClient.write(s.pki, "front-proxy-client")
	if err != nil {
		return err
	}
	saKey, saPub, err := writeServiceAccountKey(s.pki)
	if err != nil {
		return err
	}
	// Admin: client certificate in group system:masters (also as a static bearer token, handy for tests).
	admin, err := ca.issue("tessera-admin", []string{"system:masters"}, nil, nil, clientAuth)
	if err != nil {
		return err
	}
	if _, _, err := admin.write(s.pki, "admin"); err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.path("tokens.csv"), []byte(token+`,tessera-admin-token,tessera-admin-token,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(s.path("admin.token"), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	// Controller-manager and scheduler: their own identities, authorized by the bootstrap RBAC policy
	// (system:kube-controller-manager, system:kube-scheduler), as kubeadm sets them up.
	kcmClient, err := ca.issue("system:kube-controller-manager", nil, nil, nil, clientAuth)
	if err != nil {
		return err
	}
	schedClient, err := ca.issue("system:kube-scheduler", nil, nil, nil, clientAuth)
	if err != nil {
		return err
	}
	kcmServing, err := ca.issue("kube-controller-manager", nil, []string{"localhost"}, loopback, serving)
	if err != nil {
		return err
	}
	kcmCrt, kcmKey, err := kcmServing.write(s.pki, "controller-manager-serving")
	if err != nil {
		return err
	}
	schedServing, err := ca.issue("kube-scheduler", nil, []string{"localhost"}, loopback, serving)
	if err != nil {
		return err
	}
	schedCrt, schedKey, err := schedServing.write(s.pki, "scheduler-serving")
	if err != nil {
		return err
	}

	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	if s.cfg.apiserverPort != 0 {
		apiPort = s.cfg.apiserverPort
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	apiURL := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	kcmKubeconfig, schedKubeconfig := s.path("controller-manager.kubeconfig"), s.path("scheduler.kubeconfig")
	if err := os.WriteFile(kcmKubeconfig, kubeconfig(apiURL, "system:kube-controller-manager", ca, kcmClient), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(schedKubeconfig, kubeconfig(apiURL, "system:kube-scheduler", ca, schedClient), 0o600); err != nil {
		return err
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	adminTLS, err := tls.X509KeyPair(admin.certPEM, admin.keyPEM)
	if err != nil {
		return err
	}
	httpc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{adminTLS}}},
	}
	v := "--v=" + strconv.Itoa(s.cfg.verbosity)

	// --- etcd ----------------------------------------------------------------------------------
	etcd, err := s.start("etcd", append([]string{
		"--name=testcluster",
		"--data-dir=" + s.path("etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=testcluster=" + peerURL,
		"--unsafe-no-fsync=true", // throw-away data: no fsync, much faster on shared CI disks
		"--log-level=warn",
	}, s.cfg.etcdArgs...))
	if err != nil {
		return err
	}
	if err := s.waitFor(ctx, etcd, deadline, "etcd /health", func() error {
		return probe(httpc, etcdURL+"/health", `"health":"true"`)
	}); err != nil {
		return err
	}
	log.Printf("etcd ready on %s (%.1fs)", etcdURL, time.Since(t0).Seconds())

	// --- kube-apiserver ------------------------------------------------------------------------
	api, err := s.start("apiserver", append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + s.path("apiserver"),
		"--tls-cert-file=" + apiCrt,
		"--tls-private-key-file=" + apiKey,
		"--client-ca-file=" + caCrt,
		"--token-auth-file=" + s.path("tokens.csv"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-cluster-ip-range=10.96.0.0/16",
		// Only loopback is served, and Endpoints may not hold loopback addresses: the `kubernetes`
		// Service gets no endpoints (nothing in the test cluster routes through it).
		"--endpoint-reconciler-type=none",
		"--requestheader-client-ca-file=" + frontProxyCACrt,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + proxyCrt,
		"--proxy-client-key-file=" + proxyKey,
		"--allow-privileged=true",
		"--profiling=false",
		v,
	}, s.cfg.apiserverArgs...))
	if err != nil {
		return err
	}
	if err := s.waitFor(ctx, api, deadline, "kube-apiserver /readyz", func() error {
		return probe(httpc, apiURL+"/readyz", "ok")
	}); err != nil {
		return err
	}
	log.Printf("kube-apiserver ready on %s (%.1fs)", apiURL, time.Since(t0).Seconds())

	// --- kube-controller-manager and kube-scheduler (started together) -------------------------
	kcm, err := s.start("controller-manager", append([]string{
		"--kubeconfig=" + kcmKubeconfig,
		"--authentication-kubeconfig=" + kcmKubeconfig,
		"--authorization-kubeconfig=" + kcmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--tls-cert-file=" + kcmCrt,
		"--tls-private-key-file=" + kcmKey,
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + caCrt,
		"--cluster-signing-cert-file=" + caCrt,
		"--cluster-signing-key-file=" + caKey,
		"--controllers=*",
		"--profiling=false",
		v,
	}, s.cfg.kcmArgs...))
	if err != nil {
		return err
	}
	sched, err := s.start("scheduler", append([]string{
		"--kubeconfig=" + schedKubeconfig,
		"--authentication-kubeconfig=" + schedKubeconfig,
		"--authorization-kubeconfig=" + schedKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(schedPort),
		"--tls-cert-file=" + schedCrt,
		"--tls-private-key-file=" + schedKey,
		"--leader-elect=false",
		"--profiling=false",
		v,
	}, s.cfg.schedArgs...))
	if err != nil {
		return err
	}
	if err := s.waitFor(ctx, kcm, deadline, "kube-controller-manager /healthz", func() error {
		return probe(httpc, fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "ok")
	}); err != nil {
		return err
	}
	log.Printf("kube-controller-manager healthy on 127.0.0.1:%d (%.1fs)", kcmPort, time.Since(t0).Seconds())
	if err := s.waitFor(ctx, sched, deadline, "kube-scheduler /readyz", func() error {
		return probe(httpc, fmt.Sprintf("https://127.0.0.1:%d/readyz", schedPort), "ok")
	}); err != nil {
		return err
	}
	log.Printf("kube-scheduler ready on 127.0.0.1:%d (%.1fs)", schedPort, time.Since(t0).Seconds())

	// Pods can only be created once the controller-manager has made the `default` ServiceAccount.
	if err := s.waitFor(ctx, kcm, deadline, "ServiceAccount default/default", func() error {
		return probe(httpc, apiURL+"/api/v1/namespaces/default/serviceaccounts/default", "")
	}); err != nil {
		return err
	}

	// --- outputs -------------------------------------------------------------------------------
	gitVersion := "unknown"
	if resp, err := httpc.Get(apiURL + "/version"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := regexp.MustCompile(`"gitVersion":\s*"([^"]*)"`).FindSubmatch(b); m != nil {
			gitVersion = string(m[1])
		}
	}
	if err := writeFileAtomic(s.path("kubeconfig"), kubeconfig(apiURL, "tessera-admin", ca, admin), 0o600); err != nil {
		return err
	}
	env := fmt.Sprintf(`TESTCLUSTER_DIR=%s
KUBECONFIG=%s
TESTCLUSTER_APISERVER=%s
TESTCLUSTER_CA_FILE=%s
TESTCLUSTER_TOKEN_FILE=%s
TESTCLUSTER_ETCD=%s
TESTCLUSTER_KUBERNETES_VERSION=%s
TESTCLUSTER_PID=%d
`, s.dir, s.path("kubeconfig"), apiURL, caCrt, s.path("admin.token"), etcdURL, gitVersion, os.Getpid())
	if err := writeFileAtomic(s.path("env"), []byte(env), 0o644); err != nil {
		return err
	}
	readySeconds := time.Since(t0).Seconds()
	if err := writeFileAtomic(s.path("ready"), fmt.Appendf(nil, "ready_seconds=%.1f\n", readySeconds), 0o644); err != nil {
		return err
	}
	log.Printf("control plane ready in %.1fs: Kubernetes %s at %s; KUBECONFIG=%s", readySeconds, gitVersion, apiURL, s.path("kubeconfig"))
	return nil
}

// start launches `<own executable> <name> args...` as a child in its own process group.
func (s *supervisor) start(name string, args []string) (*child, error) {
	logPath := s.path("logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// One line per flag, for debugging (the admin token never appears on a command line).
	_ = os.WriteFile(s.path("logs", name+".args"), []byte(strings.Join(append([]string{s.exe, name}, args...), "\n")+"\n"), 0o644)
	cmd := exec.Command(s.exe, append([]string{name}, args...)...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	s.children = append(s.children, c)
	log.Printf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
		s.exited <- c
	}()
	return c, nil
}

// waitFor polls check every 250 ms until it succeeds, ctx ends, the deadline passes or a child exits.
func (s *supervisor) waitFor(ctx context.Context, c *child, deadline time.Time, what string, check func() error) error {
	for {
		last := check()
		if last == nil {
			return nil
		}
		for _, ch := range s.children {
			select {
			case <-ch.done:
				return fmt.Errorf("%s exited (%v) while waiting for %s; last lines of %s:\n%s", ch.name, ch.err, what, ch.logPath, tail(ch.logPath, 30))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (last error: %v); last lines of %s:\n%s", s.cfg.startTimeout, what, last, c.logPath, tail(c.logPath, 30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// shutdown stops the children in reverse dependency order: scheduler and controller-manager, then
// the apiserver, then etcd. SIGTERM to the child's process group, SIGKILL after --stop-timeout.
func (s *supervisor) shutdown() {
	_ = os.Remove(s.path("ready"))
	byName := map[string]*child{}
	for _, c := range s.children {
		byName[c.name] = c
	}
	for _, group := range [][]string{{"scheduler", "controller-manager"}, {"apiserver"}, {"etcd"}} {
		var wg sync.WaitGroup
		for _, name := range group {
			if c := byName[name]; c != nil {
				wg.Add(1)
				go func() { defer wg.Done(); s.stop(c) }()
			}
		}
		wg.Wait()
	}
	_ = os.Remove(s.path("up.pid"))
	log.Printf("all components stopped")
}

func (s *supervisor) stop(c *child) {
	select {
	case <-c.done:
		return
	default:
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-c.done:
		log.Printf("%s stopped (%v)", c.name, exitText(c.err))
	case <-time.After(s.cfg.stopTimeout):
		log.Printf("%s did not stop within %s, killing it", c.name, s.cfg.stopTimeout)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// probe GETs url and succeeds on HTTP 200 whose body contains want.
func probe(c *http.Client, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: unexpected body %q", url, body)
	}
	return nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
