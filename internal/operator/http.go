package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
)

// Register serves the operations on e, the operator socket's server, as
// POST /ops/<name>. services builds the Services of each call; refuse, when
// it returns an error, refuses an operation whose role (see Role) the
// server does not run.
func Register(e *echo.Echo, services func() *Services, refuse func(role string) error) {
	e.POST("/ops/:name", func(c echo.Context) error {
		name := c.Param("name")
		if _, ok := operations[name]; !ok {
			return c.JSON(http.StatusNotFound, map[string]string{"error": "unknown operation " + name})
		}
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<20))
		if err != nil {
			return err
		}
		if role := Role(name); role != "" {
			if err := refuse(role); err != nil {
				return c.JSON(http.StatusBadRequest, map[string]string{"error": err.Error()})
			}
		}
		res, err := Run(c.Request().Context(), services(), name, body)
		if err != nil {
			var oe Error
			if errors.As(err, &oe) {
				return c.JSON(http.StatusBadRequest, map[string]string{"error": oe.Error()})
			}
			return c.JSON(http.StatusInternalServerError, map[string]string{"error": err.Error()})
		}
		return c.JSON(http.StatusOK, res)
	})
}

// ErrNoServer is returned by Call when no server answers on the socket:
// the caller may then open the store itself.
var ErrNoServer = errors.New("no server is running")

// Call runs operation name with the JSON request body on the server
// listening on the Unix socket sock, and returns its JSON answer.
func Call(ctx context.Context, sock, name string, body []byte) ([]byte, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, ErrNoServer
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}, Timeout: 2 * time.Minute}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://candor/ops/"+name, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, ErrNoServer // a stale socket from a server that died
		}
		return nil, fmt.Errorf("admin socket %s: %w", sock, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(out, &e)
		return nil, errors.New(e.Error)
	}
	return out, nil
}
