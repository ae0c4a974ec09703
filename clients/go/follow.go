package uffdkit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// follow reads the restore's events until it is removed. The daemon does
// not keep watch connections across an upgrade or a restart (its
// per-restore listeners and sessions it does keep), so a closed watch is
// reopened and the restore looked up in `list`.
func (s *Server) follow(ctx context.Context, w *conn) {
	defer s.finish()
	for {
		gone := s.readEvents(w)
		w.close()
		if gone {
			return
		}
		var err error
		if w, err = s.reconnect(ctx); err != nil {
			s.fail(err)
			return
		}
		if w == nil {
			return
		}
	}
}

// readEvents applies events until "removed" (true) or a read error (false).
func (s *Server) readEvents(w *conn) bool {
	for {
		line, err := w.readLine()
		if err != nil {
			return false
		}
		var ev Event
		if json.Unmarshal(line, &ev) != nil || ev.ID != s.id {
			continue // not ours, or a kind this version does not know
		}
		if s.onEvent != nil {
			s.onEvent(ev)
		}
		if s.apply(ev) {
			return true
		}
	}
}

// apply records what ev means for Ready and Wait; true once removed.
func (s *Server) apply(ev Event) bool {
	switch ev.Kind {
	case "ready":
		s.markReady()
	case "failed":
		if ev.Policy != "refused" { // a stranger refused is not our VM's failure
			s.fail(fmt.Errorf("uffdkit: restore %s: %s (%s)", s.id, ev.Error, ev.Policy))
		}
	case "ended":
		s.ended(ev.Reason)
	case "closed":
		if ev.Reason == "expired" {
			s.fail(ErrExpired)
		} else if ev.Reason == "shutdown" {
			s.fail(ErrShutdown)
		}
	case "removed":
		return true
	}
	return false
}

func (s *Server) markReady() {
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.readyCh) })
}

func (s *Server) ended(reason string) {
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	switch reason {
	case "exited":
	case "stopped":
		if !stopping {
			s.fail(fmt.Errorf("uffdkit: restore %s was stopped by another client", s.id))
		}
	case "shutdown":
		s.fail(ErrShutdown)
	default:
		s.fail(fmt.Errorf("uffdkit: restore %s: its session ended: %s", s.id, reason))
	}
}

// reconnect reopens the watch, retrying for up to a minute (an upgrade
// or a systemd restart takes a moment), then checks the restore still
// exists: nil if it is gone.
func (s *Server) reconnect(ctx context.Context) (*conn, error) {
	deadline := time.Now().Add(time.Minute)
	delay := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		w, err := s.openWatch(actx)
		if err == nil {
			var live bool
			live, err = s.lookUp(actx)
			cancel()
			if err == nil && live {
				return w, nil
			}
			w.close()
			if err == nil {
				s.fail(ErrLost)
				return nil, nil
			}
		} else {
			cancel()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("uffdkit: the control socket did not come back: %w", err)
		}
		time.Sleep(delay)
		if delay < time.Second {
			delay *= 2
		}
	}
}

// lookUp says whether the restore is live, marking it ready if a VM is
// being served (its ready event may have been missed).
func (s *Server) lookUp(ctx context.Context) (bool, error) {
	c, err := dial(ctx, s.controlSocket)
	if err != nil {
		return false, err
	}
	defer c.close()
	var l struct {
		Restores []struct {
			ID           string `json:"id"`
			SessionsLive int    `json:"sessions_live"`
		} `json:"restores"`
	}
	if err := c.request(ctx, map[string]any{"cmd": "list"}, &l); err != nil {
		return false, err
	}
	for _, r := range l.Restores {
		if r.ID == s.id {
			if r.SessionsLive > 0 {
				s.markReady()
			}
			return true, nil
		}
	}
	return false, nil
}
