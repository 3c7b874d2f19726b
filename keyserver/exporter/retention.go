package exporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/candor-en/candor/api/export"
)

// Retain deletes what is older than the retention period at the current
// time; see RetainAt.
func (x *Exporter) Retain(ctx context.Context) (RetentionResult, error) {
	return x.RetainAt(ctx, x.opts.Now())
}

// RetainAt deletes what is older than the retention period at now, in an
// order that never lists a missing file:
//
//  1. every root's index.txt is rewritten without the files of windows
//     ending at or before the cutoff;
//  2. those files go (and temporary files older than the lease TTL, left by
//     crashes);
//  3. their batch records go;
//  4. keys created before the cutoff go.
//
// The result is queued for the OnRetention hook when anything was deleted.
// A root whose index could not be rewritten keeps its files until the next
// run. Keys are deleted even then, as they are never served directly.
func (x *Exporter) RetainAt(ctx context.Context, now time.Time) (RetentionResult, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now = now.UTC()
	configs, err := x.store.ExportConfigs(ctx)
	if err != nil {
		return RetentionResult{}, fmt.Errorf("retention: %w", err)
	}
	res := RetentionResult{Cutoff: x.cutoff(configs, now)}
	var errs []error
	for _, c := range configs {
		dir := x.rootDir(c.Root)
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			errs = append(errs, fmt.Errorf("retention %s: %w", c.Root, err))
			continue
		}
		if _, err := x.refreshIndex(ctx, c, dir, res.Cutoff, now); err != nil {
			if isCrash(err) {
				return res, err
			}
			if !indexWritten(dir, c.Root, res.Cutoff) {
				errs = append(errs, fmt.Errorf("retention %s: index: %w", c.Root, err))
				continue
			}
		}
		if err := x.step("retention-index"); err != nil {
			return res, err
		}
		names, err := x.removeExpired(dir, res.Cutoff)
		res.FilesRemoved += len(names)
		for _, name := range names {
			res.Files = append(res.Files, c.Root+"/"+name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("retention %s: %w", c.Root, err))
			continue
		}
		if err := x.step("retention-files"); err != nil {
			return res, err
		}
		if _, err := x.store.DeleteBatches(ctx, c.Root, res.Cutoff); err != nil {
			errs = append(errs, fmt.Errorf("retention %s: %w", c.Root, err))
		}
	}
	keys, err := x.store.DeleteExposuresCreatedBefore(ctx, res.Cutoff)
	res.KeysRemoved = keys
	if err != nil {
		errs = append(errs, fmt.Errorf("retention: %w", err))
	}
	x.m.retainedKeys.Add(float64(res.KeysRemoved))
	x.m.retainedFiles.Add(float64(res.FilesRemoved))
	slices.Sort(res.Files)
	if res.KeysRemoved > 0 || res.FilesRemoved > 0 {
		r := res
		if err := x.store.AppendEvents(ctx, []Event{{Retention: &r}}); err != nil {
			errs = append(errs, fmt.Errorf("retention: %w", err))
		}
		x.opts.Log.Info("retention", "cutoff", res.Cutoff, "keys_removed", res.KeysRemoved, "files_removed", res.FilesRemoved)
	}
	if err := x.deliver(ctx); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// indexWritten reports whether dir's index.txt lists nothing ending at or
// before cutoff, so the expired files may go even if refreshing the index
// reported another problem.
func indexWritten(dir, root string, cutoff time.Time) bool {
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	lines, err := export.ParseIndex(b, root)
	if err != nil {
		return false
	}
	for _, line := range lines {
		w, _, ok := parseFileName(strings.TrimPrefix(line, root+"/"))
		if !ok || !w.End.After(cutoff) {
			return false
		}
	}
	return true
}

// removeExpired deletes the zips of windows ending at or before cutoff, and
// temporary files older than the lease TTL (by the file system's clock,
// which wrote their times), and returns the names of the zips that went.
func (x *Exporter) removeExpired(dir string, cutoff time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > x.opts.LeaseTTL {
				if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			continue
		}
		w, _, ok := parseFileName(e.Name())
		if !ok || w.End.After(cutoff) {
			continue
		}
		if err := os.Remove(path); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		x.digests.forget(path)
		removed = append(removed, e.Name())
	}
	if len(removed) > 0 {
		if err := syncDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
