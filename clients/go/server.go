package uffdkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// Errors Wait returns for a restore that ended without its VM exiting.
var (
	// ErrExpired: no VM connected before the expiry.
	ErrExpired = errors.New("uffdkit: no VM connected before the restore expired")
	// ErrShutdown: the daemon stopped serving the restore.
	ErrShutdown = errors.New("uffdkit: the daemon shut down while serving the restore")
	// ErrLost: the restore was gone when the client reconnected after the
	// daemon closed its watch (an upgrade or a restart), and how it ended
	// was not seen.
	ErrLost = errors.New("uffdkit: the restore ended while the client was reconnecting; its outcome is unknown")
)

// Event is one event of a restore, as docs/control-protocol.md lists them:
// listening, connected, ready, failed, ended, closed, removed.
type Event struct {
	Kind        string            `json:"event"`
	ID          string            `json:"id"`
	TimeUnixNs  int64             `json:"time_unix_ns"`
	Template    string            `json:"template,omitempty"`
	Socket      string            `json:"socket,omitempty"`
	Generation  int               `json:"generation,omitempty"`
	PID         int               `json:"pid,omitempty"`
	UID         int               `json:"uid,omitempty"`
	GID         int               `json:"gid,omitempty"`
	Session     *uint64           `json:"session,omitempty"`
	Regions     int               `json:"regions,omitempty"`
	PageSize    int64             `json:"page_size,omitempty"`
	MemoryBytes int64             `json:"memory_bytes,omitempty"`
	Error       string            `json:"error,omitempty"`
	Policy      string            `json:"policy,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	Counters    map[string]uint64 `json:"counters,omitempty"`
}

// Option changes how a restore is served.
type Option func(*Server)

// WithID names the restore (default: the template's name and 16 random
// hexadecimal digits). The id is part of the socket path when the
// template says so.
func WithID(id string) Option { return func(s *Server) { s.id = id } }

// WithExpiry closes the restore if no VM has connected after d (0: never;
// default: the template's expiry).
func WithExpiry(d time.Duration) Option {
	return func(s *Server) { ms := d.Milliseconds(); s.expiryMs = &ms }
}

// WithOneShot says whether the socket closes once a VM has connected
// (default: the template's one_shot, itself true by default).
func WithOneShot(on bool) Option { return func(s *Server) { s.oneShot = &on } }

// WithUID gives the socket to uid, which alone may connect (the jailer's
// uid); the template must list it in serve_uids.
func WithUID(uid int) Option { return func(s *Server) { s.uid = &uid } }

// WithKeepSessionsOnStop makes Stop close the socket but let a live VM run
// to its end; by default Stop ends the restore and its VM, as the seed's
// Stop ended its fault loop.
func WithKeepSessionsOnStop() Option { return func(s *Server) { s.keepSessions = true } }

// WithEvents calls fn with every event of the restore, in order, from the
// goroutine that follows it: fn must not block.
func WithEvents(fn func(Event)) Option { return func(s *Server) { s.onEvent = fn } }

// Server is one snapshot restore served by the daemon. Like the seed's
// uffd.Server: NewServer, then Start (which answers the socket path to give
// Firecracker's snapshot load), Ready (closed once Firecracker's handshake
// is accepted, or when the restore ends without one), Stop, Wait.
type Server struct {
	controlSocket, template string
	vars                    map[string]string
	id                      string
	expiryMs                *int64
	oneShot                 *bool
	uid                     *int
	keepSessions            bool
	onEvent                 func(Event)

	socketPath string
	started    bool
	readyCh    chan struct{}
	readyOnce  sync.Once
	doneCh     chan struct{}
	doneOnce   sync.Once
	cancel     context.CancelFunc

	mu       sync.Mutex
	err      error
	stopping bool
	ready    bool
}

// NewServer prepares a restore of template with vars (every variable the
// template declares), served by the daemon behind controlSocket.
func NewServer(controlSocket, template string, vars map[string]string, opts ...Option) *Server {
	s := &Server{controlSocket: controlSocket, template: template, vars: vars,
		readyCh: make(chan struct{}), doneCh: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ID is the restore's id (known before Start when given WithID).
func (s *Server) ID() string { return s.id }

// SocketPath is the socket Start answered.
func (s *Server) SocketPath() string { return s.socketPath }

// Start asks the daemon to serve the restore and returns its socket path
// once the source has started and the socket accepts, so Firecracker may
// load the snapshot at once. A daemon error is an *Error (see IsCode).
// Cancelling ctx later stops the restore, as it ended the seed's loop.
func (s *Server) Start(ctx context.Context) (string, error) {
	if s.started {
		return "", errors.New("uffdkit: Start called twice")
	}
	if s.id == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		s.id = s.template + "-" + hex.EncodeToString(b[:])
	}
	// The watch first, so no event of this restore is missed.
	w, err := s.openWatch(ctx)
	if err != nil {
		return "", err
	}
	path, err := s.serveRetrying(ctx)
	if err != nil {
		w.close()
		return "", err
	}
	s.started, s.socketPath = true, path
	fctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.follow(fctx, w)
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.doneCh:
		}
	}()
	return path, nil
}

func (s *Server) openWatch(ctx context.Context) (*conn, error) {
	w, err := dial(ctx, s.controlSocket)
	if err != nil {
		return nil, err
	}
	if err := w.request(ctx, map[string]any{"cmd": "watch", "id": s.id}, nil); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// serveRetrying retries while the daemon answers "unavailable" (its worker
// starting, an upgrade under way) or "busy" (too many control
// connections), for up to 30 s or ctx's deadline.
func (s *Server) serveRetrying(ctx context.Context) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	delay := 20 * time.Millisecond
	for {
		path, err := s.serve(ctx)
		if !(IsCode(err, "unavailable") || IsCode(err, "busy")) || time.Now().After(deadline) {
			return path, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

func (s *Server) serve(ctx context.Context) (string, error) {
	c, err := dial(ctx, s.controlSocket)
	if err != nil {
		return "", err
	}
	defer c.close()
	req := map[string]any{"cmd": "serve", "template": s.template, "id": s.id, "vars": s.vars}
	if s.vars == nil {
		req["vars"] = map[string]string{}
	}
	if s.expiryMs != nil {
		req["expiry_ms"] = *s.expiryMs
	}
	if s.oneShot != nil {
		req["one_shot"] = *s.oneShot
	}
	if s.uid != nil {
		req["uid"] = *s.uid
	}
	var ans struct {
		Socket string `json:"socket"`
	}
	if err := c.request(ctx, req, &ans); err != nil {
		return "", err
	}
	if ans.Socket == "" {
		return "", errors.New("uffdkit: the daemon's serve answer has no socket")
	}
	return ans.Socket, nil
}

// Ready is closed once the daemon has accepted Firecracker's handshake
// (the guest's memory is being served), or once the restore has ended
// without that; Wait tells which.
func (s *Server) Ready() <-chan struct{} { return s.readyCh }

// Stop ends the restore (by default its live VM too; see
// WithKeepSessionsOnStop) and waits for it, returning what Wait returns.
// Stopping a restore that has ended already is not an error.
func (s *Server) Stop() error {
	if !s.started {
		return nil
	}
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := dial(ctx, s.controlSocket); err == nil {
		err = c.request(ctx, map[string]any{"cmd": "stop", "id": s.id,
			"keep_sessions": s.keepSessions}, nil)
		c.close()
		if err != nil && !IsCode(err, "not_found") {
			s.fail(err)
		}
	} else {
		s.fail(err)
	}
	return s.Wait()
}

// Wait blocks until the restore is gone (its socket closed and its VM
// ended) and returns nil if the VM exited or the restore was stopped, else
// why it ended: a handshake refused, a source error, expiry, shutdown.
func (s *Server) Wait() error {
	if !s.started {
		return errors.New("uffdkit: Wait before a successful Start")
	}
	<-s.doneCh
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail records the first reason the restore did not end well.
func (s *Server) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *Server) finish() {
	s.doneOnce.Do(func() {
		s.readyOnce.Do(func() { close(s.readyCh) })
		close(s.doneCh)
		s.cancel()
	})
}
