package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/s3"
)

// Version is the MinIO server version built when the binary is missing.
// Keep it equal to MINIO_VERSION in scripts/deps.sh.
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// readyTimeout bounds the wait for a started server to answer.
const readyTimeout = 30 * time.Second

// Server is a running MinIO server.
type Server struct {
	Endpoint  string // 127.0.0.1:port, for s3.Config.Endpoint
	AccessKey string
	SecretKey string

	dir    string // temporary: data/, certs/, minio.log
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
}

var (
	once     sync.Once
	mu       sync.Mutex // guards server and startErr after once
	server   *Server
	startErr error

	buckets atomic.Uint64
)

// Start returns the test binary's server, starting it on first use. It
// fails tb if the server cannot be built or started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	once.Do(func() {
		s, err := start()
		mu.Lock()
		server, startErr = s, err
		mu.Unlock()
	})
	mu.Lock()
	s, err := server, startErr
	mu.Unlock()
	if err != nil {
		tb.Fatalf("miniotest: %v", err)
	}
	return s
}

// Main runs the tests and then stops the server, if one was started, and
// exits. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "miniotest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Stop stops the server, if one was started; for a TestMain that has
// more to clean up than Main allows.
func Stop() error { return stop() }

// URL returns the plain-HTTP repository URL of prefix in bucket.
func (s *Server) URL(bucket, prefix string) string {
	u := "s3+http://" + s.Endpoint + "/" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u
}

// Config returns an s3.Config for prefix in bucket with the server's
// credentials.
func (s *Server) Config(bucket, prefix string) s3.Config {
	return s3.Config{
		Endpoint:        s.Endpoint,
		Bucket:          bucket,
		Prefix:          prefix,
		AccessKeyID:     s.AccessKey,
		SecretAccessKey: s.SecretKey,
	}
}

// BucketName returns a fresh, unique bucket name without creating the
// bucket.
func (s *Server) BucketName() string {
	return fmt.Sprintf("cairn-%d-%s", buckets.Add(1), randomHex(4))
}

// NewBucket creates a fresh, empty bucket and returns its name. Buckets
// live as long as the server.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	name := s.BucketName()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	be, err := s3.Open(ctx, s.Config(name, ""))
	if err != nil {
		tb.Fatalf("miniotest: %v", err)
	}
	defer be.Close()
	if err := be.Create(ctx); err != nil {
		tb.Fatalf("miniotest: create bucket %s: %v", name, err)
	}
	return name
}

// Log returns the end of what the server has logged so far (at most 8 KiB).
func (s *Server) Log() string {
	data, err := os.ReadFile(filepath.Join(s.dir, "minio.log"))
	if err != nil {
		return err.Error()
	}
	if len(data) > 8<<10 {
		data = append([]byte("..."), data[len(data)-8<<10:]...)
	}
	return string(data)
}

func logf(format string, args ...any) {
	// Straight to stderr: go test holds t.Log output back until a test
	// ends, and a build takes minutes.
	fmt.Fprintf(os.Stderr, "miniotest: "+format+"\n", args...)
}

// binary returns the server binary, building it if needed.
func binary() (string, error) {
	if p := os.Getenv("CAIRN_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CAIRN_MINIO: %w", err)
		}
		return p, nil
	}
	tools := os.Getenv("CAIRN_TOOLS")
	if tools == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no CAIRN_TOOLS and %w", err)
		}
		tools = filepath.Join(home, ".cache", "cairn-tools")
	}
	bin := filepath.Join(tools, "minio")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	return bin, build(tools, bin)
}

// build installs MinIO into tools. A lock file keeps test binaries of
// several packages from building at once; the loser finds the binary.
func build(tools, bin string) error {
	if err := os.MkdirAll(tools, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(tools, ".minio.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return nil
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	logf("%s is missing: building github.com/minio/minio@%s (takes several minutes)", bin, Version)
	start := time.Now()
	cmd := exec.Command(goBin, "install", "github.com/minio/minio@"+Version)
	cmd.Dir = tools // outside any module: pkg@version needs none
	cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go install github.com/minio/minio@%s: %v\n%s", Version, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("go install github.com/minio/minio@%s left no %s", Version, bin)
	}
	logf("built %s in %v", bin, time.Since(start).Round(time.Second))
	return nil
}

func start() (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	sweep()
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{AccessKey: "cairn-test", SecretKey: randomHex(16), dir: dir}
	// Free ports are picked, closed and then bound by the server, so
	// another process may take one in between; try a few times.
	for attempt := 1; ; attempt++ {
		err = s.run(bin)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(s.Log(), "address already in use") {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

// Server directories are os.TempDir()/cairn-minio-*, each with a file
// naming the process (the test binary) that owns it.
const (
	dirPattern = "cairn-minio-*"
	ownerFile  = "owner"
)

// sweep removes the directories of servers whose test binary died without
// stopping them (killed, timed out); the parent-death signal has ended the
// servers themselves.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or being set up
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil || pid <= 0 {
			continue
		}
		// Signal 0 sends nothing; it only asks whether pid exists.
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

// run starts the server on fresh ports and waits until it is ready. On
// failure the process is gone.
func (s *Server) run(bin string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	s.Endpoint = fmt.Sprintf("127.0.0.1:%d", ports[0])
	data := filepath.Join(s.dir, "data")
	certs := filepath.Join(s.dir, "certs")
	for _, d := range []string{data, certs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	logFile, err := os.Create(filepath.Join(s.dir, "minio.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(bin, "server", "--quiet",
		"--address", s.Endpoint,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--certs-dir", certs,
		data)
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Kill the server if the test binary dies without stopping it.
		// The signal follows the thread that forked, so fork from a
		// locked thread; Go never ends unlocked threads
		// (https://github.com/golang/go/issues/27505).
		Pdeathsig: syscall.SIGKILL,
	}
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(); err != nil {
		s.kill()
		return fmt.Errorf("%w\nminio log:\n%s", err, s.Log())
	}
	return nil
}

// waitReady polls the health endpoints and then an S3 call until the server
// answers, it exits, or readyTimeout passes.
func (s *Server) waitReady() error {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   2 * time.Second,
	}
	deadline := time.Now().Add(readyTimeout)
	for _, path := range []string{"/minio/health/live", "/minio/health/ready"} {
		url := "http://" + s.Endpoint + path
		for {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = errors.New(resp.Status)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("minio on %s not ready after %v: GET %s: %v", s.Endpoint, readyTimeout, path, err)
			}
			if err := s.pause(); err != nil {
				return err
			}
		}
	}

	// The health checks pass before the object layer is up, when S3
	// calls still fail with 503 XMinioServerNotInitialized. Wait for a
	// real call (on a bucket that does not exist) to get a real answer.
	be, err := s3.Open(context.Background(), s.Config("cairn-probe", ""))
	if err != nil {
		return err
	}
	defer be.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
		cancel()
		switch {
		case errors.Is(err, backend.ErrNotExist):
			return nil
		case errors.Is(err, backend.ErrPermission):
			return fmt.Errorf("minio on %s refuses its root credentials: %v", s.Endpoint, err)
		case time.Now().After(deadline):
			return fmt.Errorf("minio on %s not ready after %v: %v", s.Endpoint, readyTimeout, err)
		}
		if err := s.pause(); err != nil {
			return err
		}
	}
}

// pause waits a little between polls; it fails if the server has exited.
func (s *Server) pause() error {
	select {
	case <-s.exited:
		return fmt.Errorf("minio exited while starting: %v", s.cmd.ProcessState)
	case <-time.After(50 * time.Millisecond):
		return nil
	}
}

// kill stops the server: SIGTERM, then SIGKILL if it has not exited after
// 10 s. It returns when the process is gone. (MinIO starts no helper
// processes, so signalling the process is enough.)
func (s *Server) kill() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// stop stops the server if one runs and removes its directory.
func stop() error {
	mu.Lock()
	s := server
	server, startErr = nil, errors.New("server stopped: Start called after Main's tests ended")
	mu.Unlock()
	if s == nil {
		return nil
	}
	s.kill()
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
