package phone

import (
	"errors"
	"fmt"
	"time"

	"github.com/candor-en/candor/gaen"
)

// ScanInterval is how often the simulated Bluetooth scanner runs.
const ScanInterval = time.Minute

// MaxEncounter is the longest encounter Encounter records at once.
const MaxEncounter = 24 * time.Hour

// AEMMetadata returns the Bluetooth metadata every simulated phone
// broadcasts, encrypted as its AEM: version 1.0 (0x40), transmit power
// +8 dBm, two reserved bytes, as in the specification's test vectors.
func AEMMetadata() [4]byte { return [4]byte{0x40, 0x08, 0x00, 0x00} }

// Broadcast returns what the phone sends over Bluetooth during interval:
// the RPI and AEM of its key for that interval. It fails if the phone has
// no key for it.
func (st *State) Broadcast(interval uint32) (rpi Bytes16, aem []byte, err error) {
	k, ok := st.KeyAt(interval)
	if !ok {
		return Bytes16{}, nil, fmt.Errorf("no key for %s (keys cover the last %d days; run keys)", intervalTime(interval).Format(time.RFC3339), KeepDays)
	}
	tek := gaen.TEK(k.TEK)
	r := gaen.RPI(gaen.RPIK(tek), interval)
	meta := AEMMetadata()
	return Bytes16(r), gaen.EncryptAEM(gaen.AEMK(tek), r, meta[:]), nil
}

// EncounterResult is what one Encounter recorded.
type EncounterResult struct {
	// Intervals is the number of distinct intervals the encounter touched:
	// one RPI was recorded for each.
	Intervals int
	// Scans is the number of one-minute scans that heard the other phone.
	Scans int
	// First and Last are the first and last intervals touched.
	First, Last uint32
}

// Encounter records on the listening phone st what Bluetooth would have
// received from other during [start, start+d): one scan per ScanInterval
// from start, each hearing other's RPI and AEM of the scan's interval. It
// stores only sightings (interval, RPI, AEM, scan count), never who was
// met. d is rounded up to whole scans; it must be positive and at most
// MaxEncounter, and other needs a key for every interval touched.
func (st *State) Encounter(other *State, start time.Time, d time.Duration) (EncounterResult, error) {
	if d <= 0 || d > MaxEncounter {
		return EncounterResult{}, fmt.Errorf("encounter: duration %v must be positive and at most %v", d, MaxEncounter)
	}
	if other == st {
		return EncounterResult{}, errors.New("encounter: a phone cannot meet itself")
	}
	scans := int((d + ScanInterval - 1) / ScanInterval)
	// Compute every sighting before changing st, so a failure changes nothing.
	type heard struct {
		rpi   Bytes16
		aem   []byte
		scans int
	}
	var order []uint32
	byInterval := map[uint32]*heard{}
	for i := range scans {
		t := start.Add(time.Duration(i) * ScanInterval)
		iv := gaen.IntervalNumber(t)
		h, ok := byInterval[iv]
		if !ok {
			rpi, aem, err := other.Broadcast(iv)
			if err != nil {
				return EncounterResult{}, fmt.Errorf("encounter: the other phone has %w", err)
			}
			h = &heard{rpi: rpi, aem: aem}
			byInterval[iv] = h
			order = append(order, iv)
		}
		h.scans++
	}
	for _, iv := range order {
		h := byInterval[iv]
		st.addSighting(Sighting{Interval: iv, RPI: h.rpi, AEM: h.aem, Scans: h.scans})
	}
	return EncounterResult{Intervals: len(order), Scans: scans, First: order[0], Last: order[len(order)-1]}, nil
}

// maxScansPerInterval is the most scans one interval can hold.
const maxScansPerInterval = int(gaen.IntervalDuration / ScanInterval)

// addSighting adds s, merging it with a sighting of the same RPI in the
// same interval (two overlapping encounters with one phone).
func (st *State) addSighting(s Sighting) {
	for i := range st.Heard {
		h := &st.Heard[i]
		if h.Interval == s.Interval && h.RPI == s.RPI {
			h.Scans = min(h.Scans+s.Scans, maxScansPerInterval)
			return
		}
	}
	st.Heard = append(st.Heard, s)
}
