package main

import (
	"context"

	"github.com/labstack/echo/v4"
)

// verificationParts are the verification role's pieces of Main.
type verificationParts struct{}

// openVerification builds the verification service.
func (m *Main) openVerification(ctx context.Context) error { return nil }

// registerVerification adds the verification routes.
func (m *Main) registerVerification(e *echo.Echo) {}

// verificationBackground starts the verification role's periodic jobs.
func (m *Main) verificationBackground(ctx context.Context) {}

// verificationOps are the verification role's operator commands.
func verificationOps() map[string]opFunc { return nil }

// verificationAdminCommandsAdminCommands are the role's `candor admin` commands.
func verificationAdminCommands() map[string]adminCommand { return nil }
