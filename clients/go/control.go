// Package uffdkit drives a uffdkit daemon over its control socket: it asks
// the daemon to serve one snapshot restore from a template of its
// configuration, and follows that restore to its end. Its Server mirrors
// the seed handler's uffd.Server (NewServer, Start, Ready, Stop, Wait), so
// an orchestrator that ran one Go handler per restore changes a few lines
// and lets the daemon serve instead. Standard library only.
//
// The protocol is specified in docs/control-protocol.md of the uffdkit
// source; this package speaks version 1.
package uffdkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// ProtocolVersion is the control protocol version this package speaks.
const ProtocolVersion = 1

// DefaultControlSocket is the daemon's control socket unless its
// configuration says otherwise.
const DefaultControlSocket = "/run/uffdkit/control.sock"

// Error is an error answered by the daemon: Code is for programs (one of
// the codes of docs/control-protocol.md, e.g. "unknown_template",
// "bad_variable", "source_failed"), Message for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("uffdkit: %s (%s)", e.Message, e.Code)
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// conn is one control connection: JSON lines each way.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

// maxLine bounds one line from the daemon (a watch event or an answer).
const maxLine = 1 << 20

func dial(ctx context.Context, path string) (*conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("uffdkit: connect to the control socket %s: %w", path, err)
	}
	return &conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (c *conn) close() error { return c.c.Close() }

// request sends req (with "v") and decodes one answer line into out.
// ctx bounds the whole exchange.
func (c *conn) request(ctx context.Context, req map[string]any, out any) error {
	req["v"] = ProtocolVersion
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	stop := c.deadlineFrom(ctx)
	defer stop()
	if _, err := c.c.Write(append(line, '\n')); err != nil {
		return c.ctxErr(ctx, fmt.Errorf("uffdkit: send %v: %w", req["cmd"], err))
	}
	ans, err := c.readLine()
	if err != nil {
		return c.ctxErr(ctx, fmt.Errorf("uffdkit: answer to %v: %w", req["cmd"], err))
	}
	return decodeAnswer(ans, out)
}

// deadlineFrom makes ctx's cancellation interrupt blocked reads and
// writes; the returned function undoes it.
func (c *conn) deadlineFrom(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			c.c.SetDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	return func() { close(done) }
}

func (c *conn) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (c *conn) readLine() ([]byte, error) {
	var line []byte
	for {
		part, isPrefix, err := c.r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, part...)
		if len(line) > maxLine {
			return nil, errors.New("a line from the daemon over 1 MiB")
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// decodeAnswer turns an error answer into *Error, else decodes into out.
func decodeAnswer(line []byte, out any) error {
	var e struct {
		Error *string `json:"error"`
		Code  string  `json:"code"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("uffdkit: the daemon answered something that is not JSON: %q", truncate(line))
	}
	if e.Error != nil {
		return &Error{Code: e.Code, Message: *e.Error}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(line, out)
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// Version asks the daemon for its protocol and version string.
func Version(ctx context.Context, controlSocket string) (protocol int, daemon string, err error) {
	c, err := dial(ctx, controlSocket)
	if err != nil {
		return 0, "", err
	}
	defer c.close()
	var v struct {
		Protocol int    `json:"protocol"`
		Daemon   string `json:"daemon"`
	}
	err = c.request(ctx, map[string]any{"cmd": "version"}, &v)
	return v.Protocol, v.Daemon, err
}
