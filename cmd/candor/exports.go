package main

import (
	"context"

	"github.com/labstack/echo/v4"
)

// exportParts are the export role's pieces of Main.
type exportParts struct{}

// openExports builds the export service.
func (m *Main) openExports(ctx context.Context) error { return nil }

// registerExports adds the export routes.
func (m *Main) registerExports(e *echo.Echo) {}

// exportBackground starts the export role's periodic jobs.
func (m *Main) exportBackground(ctx context.Context) {}

// exportOps are the export role's operator commands.
func exportOps() map[string]opFunc { return nil }

// exportAdminCommandsAdminCommands are the role's `candor admin` commands.
func exportAdminCommands() map[string]adminCommand { return nil }
