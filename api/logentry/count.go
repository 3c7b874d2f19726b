package logentry

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// CountThreshold is the smallest count an entry shows exactly; smaller
// counts show as "<10", so that a rare event cannot be tied to a person.
const CountThreshold = 10

// belowThreshold is how a count under CountThreshold is written.
const belowThreshold = `"<10"`

// Count is a count of people's actions in an aggregate (codes issued,
// uploads accepted, keys deleted). In JSON it is an integer when at least
// CountThreshold and the string "<10" otherwise; the zero Count is "<10".
type Count struct {
	n int64
}

// NewCount returns the Count of n. A count below CountThreshold keeps no
// trace of its value: it is only "<10".
func NewCount(n int64) Count {
	if n < CountThreshold {
		return Count{}
	}
	return Count{n: n}
}

// Exact returns the count and true when it is shown exactly, or 0 and
// false when it is below CountThreshold.
func (c Count) Exact() (int64, bool) {
	if c.n < CountThreshold {
		return 0, false
	}
	return c.n, true
}

// Below reports whether the count is below CountThreshold.
func (c Count) Below() bool { return c.n < CountThreshold }

// String returns the count as entries show it: the number, or "<10".
func (c Count) String() string {
	if c.Below() {
		return "<" + strconv.Itoa(CountThreshold)
	}
	return strconv.FormatInt(c.n, 10)
}

// MarshalJSON implements json.Marshaler.
func (c Count) MarshalJSON() ([]byte, error) {
	if c.Below() {
		return []byte(belowThreshold), nil
	}
	return strconv.AppendInt(nil, c.n, 10), nil
}

// UnmarshalJSON implements json.Unmarshaler: an integer of at least
// CountThreshold, or "<10".
func (c *Count) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil || s != "<10" {
			return fmt.Errorf("count %s: want an integer or \"<10\"", b)
		}
		*c = Count{}
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("count %s: want an integer or \"<10\"", b)
	}
	if n < CountThreshold {
		return fmt.Errorf("count %d: counts below %d must be written \"<10\"", n, CountThreshold)
	}
	c.n = n
	return nil
}

// Duration is a length of time in a policy, written in JSON as Go writes
// durations ("15m0s", "336h0m0s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"15m0s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}
