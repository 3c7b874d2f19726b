package transparency

import (
	"strings"
	"testing"

	"github.com/candor-en/candor/api/logentry"
)

// Every entry type has a plain-language name and explanation, and the page
// shows them with a summary a lay reader can start from.
func TestPageExplainsEveryEntryType(t *testing.T) {
	for _, typ := range logentry.Types() {
		name, expl, ok := typeInfoOf(typ)
		if !ok || name == "" || len(expl) < 40 {
			t.Errorf("entry type %s has no plain explanation", typ)
		}
	}
	f := newFixture(t)
	l := f.open(t)
	fill(t, l, 60)
	srv := serve(t, l)
	_, body := get(t, srv.URL+"/transparency")
	for _, want := range []string{
		`<strong id="log-size">64</strong> entries`, "What each kind of entry means", `id="type-stats.daily"`,
		"Daily counts", "Counts below 10 are shown as", `<summary>The numbers`, `href="#type-export.published"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
