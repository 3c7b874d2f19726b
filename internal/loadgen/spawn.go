package loadgen

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// Spawn starts exe (the candor binary) as `serve` on a free loopback port
// with its data in dir, waits until it answers /health, and returns its base
// URL and the function that stops it.
func Spawn(exe, dir string) (stop func(), url string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	// The load comes from one address with one pair of API keys: lift the
	// request rate limits (the server takes everything else, such as
	// --store, from CANDOR_* variables).
	cmd := exec.Command(exe, "serve", "--data", dir, "--addr", addr, "--metrics-addr", "127.0.0.1:0", "--log-level", "warn",
		"--rate-limit-per-address", "0", "--rate-limit-per-device-key", "0", "--rate-limit-per-admin-key", "0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	go func() { // drain the banner
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
	}()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	url = "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			return stop, url, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, "", errors.New("spawned server did not become healthy")
}
