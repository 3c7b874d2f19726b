package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/candor-en/candor/keyserver/exporter"
)

// ensureDemoExport gives a fresh installation an export configuration for
// the demo realm's region, so that `make run` shows the whole journey:
// issue, verify, publish, export, download. It does nothing once any
// export configuration exists.
func (m *Main) ensureDemoExport(ctx context.Context, out io.Writer) error {
	configs, err := m.ExportStore.ExportConfigs(ctx)
	if err != nil || len(configs) > 0 {
		return err
	}
	c := exporter.Config{
		Root: "demo", Region: "DEMO", Period: time.Hour,
		SignatureInfos: []exporter.SignatureInfo{{KeyID: "demo", KeyVersion: "v1"}},
	}
	if _, _, err := exporter.AddConfig(ctx, m.ExportStore, m.ExportKeys, c, m.Config.now()); err != nil {
		return fmt.Errorf("demo export: %w", err)
	}
	fmt.Fprintf(out, "First start: export files of region DEMO are published hourly at %s/exports/demo/index.txt\n", m.publicURL())
	fmt.Fprintf(out, "  (signing public key: %s/exports/demo/keys)\n", m.publicURL())
	return nil
}
