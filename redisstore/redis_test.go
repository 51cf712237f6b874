package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// redisServer is a real redis-server the test starts on a free loopback
// port, without persistence, and stops.
type redisServer struct {
	t    *testing.T
	path string
	port int
	cmd  *exec.Cmd
}

// startRedis starts redis-server, or skips when it is not installed unless
// HTTPBREAKER_REQUIRE_REDIS=1 (which CI sets after installing it).
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("HTTPBREAKER_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not found and HTTPBREAKER_REQUIRE_REDIS=1: apt-get install redis-server")
		}
		t.Skip("redis-server not found: apt-get install redis-server to run the Redis tests")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &redisServer{t: t, path: path, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.path, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.t.TempDir(), "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil { // the server is starting: not a state under test
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// client returns a go-redis client of its own, closed with the test.
func (s *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// commands counts the data commands the server has run, from INFO
// commandstats, leaving out the connection's own (ping, info, subscribe…).
func (s *redisServer) commands() int {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		s.t.Fatal(err)
	}
	total := 0
	for _, cmd := range []string{"incr", "pexpire", "get", "set", "del", "publish", "evalsha", "eval", "multi", "exec"} {
		var calls int
		if i := strings.Index(info, "cmdstat_"+cmd+":calls="); i >= 0 {
			_, _ = fmt.Sscanf(info[i+len("cmdstat_"+cmd+":calls="):], "%d", &calls)
		}
		total += calls
	}
	return total
}

// redisClientForOptions is a client that is never used: New sends nothing.
func redisClientForOptions() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
}
