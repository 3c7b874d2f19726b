package main

import (
	"context"

	"github.com/labstack/echo/v4"
)

// transparencyParts are the transparency log's pieces of Main.
type transparencyParts struct{}

// openTransparency opens the data-use log.
func (m *Main) openTransparency(ctx context.Context) error { return nil }

// registerTransparency adds the /log/ and /transparency routes.
func (m *Main) registerTransparency(e *echo.Echo) {}

// transparencyBackground starts the log's periodic jobs.
func (m *Main) transparencyBackground(ctx context.Context) {}
