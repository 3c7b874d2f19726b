package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/internal/operator"
)

// downloadLoad fetches the export index and the files it lists, as phones
// do, with each level's concurrency.
func downloadLoad(ctx context.Context, c *Config) ([]Result, error) {
	root := c.ExportsRoot
	if root == "" {
		var err error
		if root, err = prepareDownloads(ctx, c); err != nil {
			return nil, err
		}
	}
	cl, err := client.New(c.URL)
	if err != nil {
		return nil, err
	}
	names, err := cl.Index(ctx, root)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("export root %s lists no files", root)
	}
	index := []*Request{{Method: http.MethodGet, URL: c.URL + client.ExportsPath + root + "/index.txt"}}
	var zips []*Request
	var size int64
	for _, n := range names {
		r := &Request{Method: http.MethodGet, URL: c.URL + client.ExportsPath + n}
		zips = append(zips, r)
		resp, err := http.Get(r.URL)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("get %s: %d %v", r.URL, resp.StatusCode, err)
		}
		size += n
	}
	zipLoad := fmt.Sprintf("download: %d zip file(s), avg %.0f KiB", len(zips), float64(size)/float64(len(zips))/1024)
	var results []Result
	for _, n := range c.Levels {
		hc := NewClient(n)
		Run(ctx, hc, "warmup", &cycle{reqs: zips}, n, 2*time.Second, StatusOK)
		for _, l := range []struct {
			name string
			reqs []*Request
		}{{"download: index.txt", index}, {zipLoad, zips}} {
			res := Run(ctx, hc, l.name, &cycle{reqs: l.reqs}, n, c.Duration, StatusOK)
			c.print(res)
			results = append(results, res)
		}
	}
	return results, nil
}

// cycle is a Source that hands out its requests round and round.
type cycle struct {
	reqs []*Request
	i    atomic.Int64
}

// Next implements Source.
func (c *cycle) Next() (*Request, bool) {
	i := c.i.Add(1) - 1
	return c.reqs[i%int64(len(c.reqs))], true
}

// Shape of the export the download load makes: one hour's file of
// downloadUploads uploads of 14 keys, from an app and region of its own so
// that the publish load's keys do not end up in it.
const (
	downloadRoot    = "loadtest"
	downloadApp     = "loadtest.download"
	downloadRegion  = "LOADDL"
	downloadUploads = 2000
)

// prepareDownloads makes an export file to download: it publishes keys as
// the publish load does, adds the export configuration downloadRoot for
// them and runs an export pass as if the window had closed (as `candor
// export run --now … --allow-future` does).
func prepareDownloads(ctx context.Context, c *Config) (string, error) {
	if c.Operator == nil {
		return "", errors.New("download load: no export root and no operator to make one")
	}
	pl, err := newPublisher(ctx, c.Operator, c.URL, downloadApp, downloadRegion)
	if err != nil {
		return "", err
	}
	var created json.RawMessage
	add := operator.ExportAddRequest{Root: downloadRoot, Region: downloadRegion, KeyID: "load", KeyVersion: "v1"}
	if err := c.Operator(ctx, "export.add", add, &created); err != nil {
		return "", fmt.Errorf("add export configuration: %w", err)
	}
	c.progress("publishing %d uploads of 14 keys and exporting them...\n", downloadUploads)
	reqs, err := pl.requests(downloadUploads, 14)
	if err != nil {
		return "", err
	}
	res := Run(ctx, NewClient(16), "prepare", NewSlice(reqs), 16, time.Minute, StatusOK)
	if res.Errors > 0 || res.Requests != downloadUploads {
		return "", fmt.Errorf("publish for the download load: %d of %d failed: %v", res.Errors, res.Requests, res.Statuses)
	}
	at := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + 16*time.Minute)
	var ran operator.ExportRunResponse
	if err := c.Operator(ctx, "export.run", operator.ExportRunRequest{Now: at.Format(time.RFC3339), AllowFuture: true}, &ran); err != nil {
		return "", fmt.Errorf("export run: %w", err)
	}
	if len(ran.Errors) > 0 {
		return "", fmt.Errorf("export run: %s", strings.Join(ran.Errors, "; "))
	}
	return downloadRoot, nil
}
