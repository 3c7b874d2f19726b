package audit

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Audit of %s\n", r.Log)
	fmt.Fprintf(&b, "  origin:     %s\n", r.Origin)
	if r.RootHash != "" {
		fmt.Fprintf(&b, "  checkpoint: %d entries, root %s", r.Size, r.RootHash)
		if r.PreviousSize > 0 {
			fmt.Fprintf(&b, " (previously %d)", r.PreviousSize)
		}
		b.WriteString("\n")
	}
	if len(r.Entries) > 0 {
		var parts []string
		for _, t := range slices.Sorted(maps.Keys(r.Entries)) {
			parts = append(parts, fmt.Sprintf("%s %d", t, r.Entries[t]))
		}
		fmt.Fprintf(&b, "  entries:    %s\n", strings.Join(parts, ", "))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Status, c.Detail)
		for _, p := range c.Problems {
			fmt.Fprintf(tw, "\t\t  - %s\n", p)
		}
	}
	tw.Flush()
	b.WriteString("\n")
	if failed := r.Failed(); len(failed) > 0 {
		fmt.Fprintf(&b, "FAILED: %d of %d checks failed\n", len(failed), len(r.Checks))
	} else {
		fmt.Fprintf(&b, "PASSED: %d checks\n", len(r.Checks))
	}
	if r.StateSaved {
		b.WriteString("The checkpoint is saved in the state file: the next run checks the log against it.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
