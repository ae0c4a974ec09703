package uffdkit

// These tests drive a real uffdkit daemon and restore through the real
// simulator (uffdkit-sim), which checks every byte; UFFDKIT_BUILD names the
// build directory (tests/clients/go.sh sets it).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type daemon struct {
	dir, ctl, bin, sim string
	cmd                *exec.Cmd
}

func startDaemon(t *testing.T) *daemon {
	build := os.Getenv("UFFDKIT_BUILD")
	if build == "" {
		t.Skip("UFFDKIT_BUILD is not set: run through tests/clients/go.sh")
	}
	d := &daemon{dir: t.TempDir(), bin: filepath.Join(build, "bin", "uffdkit"),
		sim: filepath.Join(build, "bin", "uffdkit-sim")}
	d.ctl = filepath.Join(d.dir, "ctl.sock")
	for _, dir := range []string{"img", "sb"} {
		if err := os.Mkdir(filepath.Join(d.dir, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`uffdkit = { control_socket = "%[1]s/ctl.sock"; };
listeners = ();
templates = (
  { name = "vm"; vars = [ "image" ];
    socket = "%[1]s/sb/{id}.sock";
    source = { plugin = "mmap"; path = "%[1]s/img/{image}.img"; }; }
);
`, d.dir)
	path := filepath.Join(d.dir, "uffdkit.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(d.dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(d.bin, "--config", path)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("daemon log:\n%s", b)
		}
	})
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p, _, err := Version(ctx, d.ctl)
		cancel()
		if err == nil {
			if p != ProtocolVersion {
				t.Fatalf("the daemon speaks protocol %d", p)
			}
			return d
		}
		if i == 200 {
			t.Fatalf("the control socket never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// image writes img/NAME.img with the simulator's pattern.
func (d *daemon) image(t *testing.T, name string) string {
	path := filepath.Join(d.dir, "img", name+".img")
	out, err := exec.Command(d.sim, "mkimage", path, "--size", "8M", "--seed", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage: %v: %s", err, out)
	}
	return path
}

// restore runs a simulated VM against sock; its summary line.
func (d *daemon) restore(t *testing.T, sock, img string) string {
	out, err := exec.Command(d.sim, "run", "--socket", sock, "--image", img,
		"--vcpus", "2", "--timeout", "60").CombinedOutput()
	if err != nil {
		t.Fatalf("uffdkit-sim: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "mismatches=0") {
		t.Fatalf("uffdkit-sim found wrong bytes: %s", out)
	}
	return strings.TrimSpace(string(out))
}

type recorder struct {
	mu    sync.Mutex
	kinds []string
}

func (r *recorder) add(ev Event) {
	r.mu.Lock()
	r.kinds = append(r.kinds, ev.Kind)
	r.mu.Unlock()
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.kinds, " ")
}

func waitReady(t *testing.T, s *Server) {
	select {
	case <-s.Ready():
	case <-time.After(60 * time.Second):
		t.Fatal("Ready was never closed")
	}
}

func TestRestoreLikeTheSeed(t *testing.T) {
	d := startDaemon(t)
	img := d.image(t, "base")
	var ev recorder
	s := NewServer(d.ctl, "vm", map[string]string{"image": "base"},
		WithID("sb-1"), WithEvents(ev.add))
	sock, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sock != filepath.Join(d.dir, "sb", "sb-1.sock") {
		t.Fatalf("socket %q, not the template's", sock)
	}
	done := make(chan string, 1)
	go func() { done <- d.restore(t, sock, img) }()
	waitReady(t, s)
	t.Logf("restored: %s", <-done)
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	want := "listening connected closed ready ended removed"
	if got := ev.String(); got != want {
		// connected, closed (one_shot) and ready may interleave only as
		// the protocol allows: closed right after connected.
		t.Fatalf("events %q, want %q", got, want)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the one-shot socket is still there: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	d := startDaemon(t)
	d.image(t, "base")
	cases := []struct {
		template string
		vars     map[string]string
		code     string
	}{
		{"nosuch", map[string]string{"image": "base"}, "unknown_template"},
		{"vm", map[string]string{"image": "../base"}, "bad_variable"},
		{"vm", map[string]string{"image": ""}, "bad_variable"},
		{"vm", map[string]string{"image": strings.Repeat("a", 65)}, "bad_variable"},
		{"vm", map[string]string{"image": "base", "other": "x"}, "bad_variable"},
		{"vm", map[string]string{}, "bad_variable"},
		{"vm", map[string]string{"image": "missing"}, "source_failed"},
	}
	for i, c := range cases {
		s := NewServer(d.ctl, c.template, c.vars, WithID(fmt.Sprintf("bad-%d", i)))
		sock, err := s.Start(context.Background())
		if !IsCode(err, c.code) {
			t.Errorf("%s %v: got %v (socket %q), want code %s", c.template, c.vars, err, sock, c.code)
			continue
		}
		var e *Error
		errors.As(err, &e)
		if e.Message == "" {
			t.Errorf("%s %v: an error without a message", c.template, c.vars)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(d.dir, "sb"))
	if len(entries) != 0 {
		t.Fatalf("failed serves left sockets behind: %v", entries)
	}
}

func TestStopBeforeAnyVM(t *testing.T) {
	d := startDaemon(t)
	d.image(t, "base")
	s := NewServer(d.ctl, "vm", map[string]string{"image": "base"})
	sock, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	<-s.Ready() // closed when the restore ends without a VM
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket is still there after Stop: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	d := startDaemon(t)
	d.image(t, "base")
	s := NewServer(d.ctl, "vm", map[string]string{"image": "base"},
		WithExpiry(300*time.Millisecond))
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); !errors.Is(err, ErrExpired) {
		t.Fatalf("Wait: %v, want ErrExpired", err)
	}
}

func TestCancelStops(t *testing.T) {
	d := startDaemon(t)
	img := d.image(t, "base")
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(d.ctl, "vm", map[string]string{"image": "base"})
	sock, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A VM that stays after verifying, so the restore is live when the
	// context is cancelled.
	sim := exec.Command(d.sim, "run", "--socket", sock, "--image", img, "--hold", "30")
	var out strings.Builder
	sim.Stdout, sim.Stderr = &out, &out
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, s)
	cancel()
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait after cancel: %v", err)
	}
	sim.Wait() // killed by the stop: the VM lost its server
	if st, ok := sim.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() {
		t.Fatalf("the VM was not killed by Stop: %v %s", sim.ProcessState, out.String())
	}
}

// An upgrade (SIGUSR2: the daemon executes itself again) while the VM is
// faulting: the daemon keeps the restore and its session, the client
// reopens its watch, and the VM gets every byte right.
func TestUpgradeKeepsTheRestore(t *testing.T) {
	d := startDaemon(t)
	img := d.image(t, "base")
	var ev recorder
	s := NewServer(d.ctl, "vm", map[string]string{"image": "base"}, WithEvents(ev.add))
	sock, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		out, err := exec.Command(d.sim, "run", "--socket", sock, "--image", img,
			"--delay-us", "1000", "--timeout", "120").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "mismatches=0") {
			out = append(out, []byte(fmt.Sprintf(" (%v)", err))...)
		}
		done <- strings.TrimSpace(string(out))
	}()
	waitReady(t, s)
	if err := d.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	out := <-done
	if !strings.Contains(out, "mismatches=0") {
		t.Fatalf("the VM restored across the upgrade: %s", out)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait: %v (events %s)", err, ev.String())
	}
	t.Logf("restored across an upgrade: %s; events %s", out, ev.String())
}
