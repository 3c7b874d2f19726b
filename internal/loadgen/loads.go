package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The loads RunLoads knows.
const (
	// ModePublish uploads keys with prebuilt certificates of an authority
	// it registers.
	ModePublish = "publish"
	// ModeVerify runs the app's flow: issue a code with the admin API,
	// verify it, get a certificate; each step timed.
	ModeVerify = "verify"
	// ModeDownload fetches the export index and zips, as phones do.
	ModeDownload = "download"
)

// Config says which loads RunLoads drives against which server.
type Config struct {
	// URL is the server's base URL.
	URL string
	// Operator creates what the loads need on the server (an authority and
	// app, a realm and API keys, an export). Nil when the server's data
	// directory is not at hand: then the verify load needs AdminKey and
	// DeviceKey, the download load ExportsRoot, and the publish load cannot
	// run.
	Operator Operator
	// Modes are the loads, in order: ModePublish, ModeVerify, ModeDownload.
	Modes []string
	// Levels are the concurrency levels each load runs at.
	Levels []int
	// Duration is how long each level runs.
	Duration time.Duration
	// KeysPerPublish is the number of keys in each upload.
	KeysPerPublish int
	// MaxRate is the number of publish requests prebuilt per second of
	// Duration, an upper bound on their rate.
	MaxRate int
	// AdminKey and DeviceKey are the verify load's API keys, of one realm;
	// empty, the load creates them through Operator.
	AdminKey, DeviceKey string
	// ExportsRoot is the export root the download load fetches; empty, the
	// load publishes and exports keys through Operator.
	ExportsRoot string
	// Out receives one line per result, Progress what is being prepared;
	// either may be nil.
	Out, Progress io.Writer
}

// Validate reports what in c keeps the loads from running.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("no server URL")
	}
	if len(c.Levels) == 0 {
		return errors.New("no concurrency level")
	}
	for _, n := range c.Levels {
		if n < 1 {
			return fmt.Errorf("concurrency %d", n)
		}
	}
	if (c.AdminKey == "") != (c.DeviceKey == "") {
		return errors.New("an admin API key without a device API key, or the other way round")
	}
	for _, m := range c.Modes {
		switch m {
		case ModePublish:
			if c.Operator == nil {
				return errors.New("the publish load needs an operator to register its authority")
			}
		case ModeVerify:
			if c.Operator == nil && c.AdminKey == "" {
				return errors.New("the verify load needs API keys, or an operator to create them")
			}
		case ModeDownload:
			if c.Operator == nil && c.ExportsRoot == "" {
				return errors.New("the download load needs an export root with files, or an operator to make one")
			}
		default:
			return fmt.Errorf("load %q: want %s, %s or %s", m, ModePublish, ModeVerify, ModeDownload)
		}
	}
	return nil
}

// RunLoads drives c's loads, one after the other, each at every level, and
// returns their results in that order.
func RunLoads(ctx context.Context, c Config) ([]Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.URL = strings.TrimSuffix(c.URL, "/")
	var results []Result
	for _, m := range c.Modes {
		var res []Result
		var err error
		switch m {
		case ModePublish:
			res, err = publishLoad(ctx, &c)
		case ModeVerify:
			res, err = verifyLoad(ctx, &c)
		case ModeDownload:
			res, err = downloadLoad(ctx, &c)
		}
		if err != nil {
			return nil, fmt.Errorf("%s load: %w", m, err)
		}
		results = append(results, res...)
	}
	return results, nil
}

// publishLoad uploads keys with certificates prebuilt for an authority it
// registers, with each level's concurrency.
func publishLoad(ctx context.Context, c *Config) ([]Result, error) {
	pl, err := newPublisher(ctx, c.Operator, c.URL, loadApp, loadRegion)
	if err != nil {
		return nil, err
	}
	var results []Result
	for _, n := range c.Levels {
		count := int(c.Duration.Seconds()) * c.MaxRate
		c.progress("building %d publish requests with certificates...\n", count)
		reqs, err := pl.requests(count, c.KeysPerPublish)
		if err != nil {
			return nil, err
		}
		// Warm the connections and the server before measuring.
		Run(ctx, NewClient(n), "warmup", NewSlice(reqs[:min(len(reqs), 500)]), n, 5*time.Second, StatusOK)
		res := Run(ctx, NewClient(n), "publish "+strconv.Itoa(c.KeysPerPublish)+" keys", NewSlice(reqs[min(len(reqs), 500):]), n, c.Duration, StatusOK)
		c.print(res)
		results = append(results, res)
	}
	return results, nil
}

// StatusOK accepts 200 only, for Run.
func StatusOK(status int) bool { return status == http.StatusOK }

// print writes res, and its statuses when some failed, to c.Out.
func (c *Config) print(res Result) {
	if c.Out == nil {
		return
	}
	fmt.Fprintln(c.Out, res)
	if res.Errors > 0 {
		fmt.Fprintf(c.Out, "  statuses: %v\n", res.Statuses)
	}
}

// progress writes what is being prepared to c.Progress.
func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format, args...)
	}
}
