// Package redistest starts real redis-server processes on loopback ports for
// tests: a standalone server, or a three-master cluster.
package redistest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Binary returns the path of redis-server. When it is missing the test fails
// under CI (CI=true) and is skipped elsewhere, saying what to install.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not installed: apt-get install redis-server"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is a running redis-server.
type Server struct {
	Addr string
	Dir  string
	cmd  *exec.Cmd
	args []string
	bin  string
}

// Start runs a standalone redis-server with its data in a temp dir, with
// extra configuration arguments (e.g. "--appendonly", "yes"), and stops it
// when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	port := freePort(t)
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, bin: bin}
	s.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}, extra...)
	t.Cleanup(func() { s.Kill() }) // registered first: a server that never answers is still stopped
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	waitReady(t, s.Addr)
}

// Kill stops the server with SIGKILL (no shutdown save).
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart starts the server again with the same configuration and data dir.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.start(t)
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) goredis.UniversalClient {
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func waitReady(t testing.TB, addr string) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis-server on %s did not start", addr)
}

// StartCluster runs three redis-server masters in cluster mode, assigns
// the 16384 slots among them, and returns a cluster client.
func StartCluster(t testing.TB) goredis.UniversalClient {
	t.Helper()
	var addrs []string
	bus := map[string]int{}
	for range 3 {
		// An explicit bus port: by default Redis uses port+10000 and refuses
		// client ports above 55535, which the kernel hands out often.
		busPort := freePort(t)
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(busPort))
		addrs = append(addrs, s.Addr)
		bus[s.Addr] = busPort
	}
	ctx := context.Background()
	per := 16384 / len(addrs)
	for i, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a})
		lo, hi := i*per, (i+1)*per-1
		if i == len(addrs)-1 {
			hi = 16383
		}
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("cluster addslots on %s: %v", a, err)
		}
		for _, b := range addrs {
			if b == a {
				continue
			}
			host, port, _ := net.SplitHostPort(b)
			// CLUSTER MEET ip port bus-port: the bus port is not port+10000 here.
			if err := c.Do(ctx, "CLUSTER", "MEET", host, port, bus[b]).Err(); err != nil {
				t.Fatalf("cluster meet: %v", err)
			}
		}
		c.Close()
	}
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cc.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info, err := cc.ClusterInfo(ctx).Result()
		if err == nil && contains(info, "cluster_state:ok") {
			// Every master must know the whole slot map before use.
			ok := true
			for _, a := range addrs {
				c := goredis.NewClient(&goredis.Options{Addr: a})
				inf, err := c.ClusterInfo(ctx).Result()
				c.Close()
				if err != nil || !contains(inf, "cluster_state:ok") || !contains(inf, "cluster_known_nodes:3") {
					ok = false
				}
			}
			if ok {
				cc.ReloadState(ctx)
				return cc
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("redis cluster did not become ready")
	return nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
