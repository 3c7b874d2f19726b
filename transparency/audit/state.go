package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is what an auditor remembers between runs: the last checkpoint it
// verified and the key it verified it with. A later checkpoint must be
// consistent with it.
type State struct {
	// Log is the log URL the checkpoint came from.
	Log string `json:"log"`
	// Key is the note verifier key of the log.
	Key string `json:"key"`
	// Checkpoint is the signed checkpoint as served.
	Checkpoint string `json:"checkpoint"`
	Size       uint64 `json:"size"`
	// RootHash is the checkpoint's root hash.
	RootHash []byte    `json:"rootHash"`
	Checked  time.Time `json:"checked"`
}

// LoadState reads the state file at path; a missing file is an empty State.
func LoadState(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("audit state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("audit state %s: %w", path, err)
	}
	return s, nil
}

// SaveState writes s to path atomically.
func SaveState(path string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-state-*")
	if err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	return nil
}
