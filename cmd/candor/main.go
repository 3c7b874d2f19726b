// Command candor runs Candor, the exposure notification backend, and its
// tools. Run `candor help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "candor:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "candor:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// IO is where a command reads and writes.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, io IO) error
}

func commands() []command {
	return []command{
		{"serve", "run the server (every role in one process by default)", runServe},
		{"admin", "manage authorities, apps, realms, API keys and exports", runAdmin},
		{"version", "print the version", runVersion},
		{"loadtest", "drive load against a server and print throughput and latency", runLoadtest},
		{"phone", "simulate phones: keys, encounters, reports and exposure checks", runPhone},
		{"export", "run export passes", runExport},
		{"audit", "verify a server's transparency log and export files from the outside", runAudit},
		// More commands (export, audit, phone, loadtest) are added here.
	}
}

// Run executes the candor command line args.
func Run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	stdio := IO{In: in, Out: out, Err: errOut}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(errOut)
		if len(args) == 0 {
			return usageError{"no command"}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdio)
		}
	}
	usage(errOut)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: candor <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `candor <command> --help` for a command's flags.")
}
