package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// A bulk-issue file is CSV with one person per row: test type, symptom
// onset date, test date and an optional reference of the health worker's
// own (echoed in the results so rows can be matched to people; never
// stored). A header row names the columns in any order; without one the
// order is testType, symptomDate, testDate, ref. Other columns are
// ignored — a phone number column is never read.
//
// Each row's tracking ID (UUID) is derived from the realm, the file's
// SHA-256, the issuer's date and the row number, unless the file has a uuid
// column: uploading the same file again the same day continues where an
// interrupted upload stopped, and rows already issued are reported as such
// instead of getting a second code.

// Bulk statuses.
const (
	statusIssued  = "issued"
	statusEarlier = "issued-earlier"
	statusFailed  = "failed"
)

// maxBulkBatch bounds the rows of one /ui/bulk/issue call.
const maxBulkBatch = 50

type bulkRow struct {
	Row         int    `json:"row"`
	Ref         string `json:"ref,omitempty"`
	TestType    string `json:"testType"`
	SymptomDate string `json:"symptomDate,omitempty"`
	TestDate    string `json:"testDate,omitempty"`
	UUID        string `json:"uuid"`
	// Error is why the row cannot be issued as it is.
	Error string `json:"error,omitempty"`
}

type bulkResult struct {
	bulkRow
	Status        string `json:"status"`
	Code          string `json:"code,omitempty"`
	LongCode      string `json:"longCode,omitempty"`
	Link          string `json:"link,omitempty"`
	ExpiresAt     int64  `json:"expiresAt,omitempty"`
	LongExpiresAt int64  `json:"longExpiresAt,omitempty"`
}

// maxRefLength bounds the reference column.
const maxRefLength = 64

// parseBulkCSV reads a bulk-issue file of realm, on the issuer's day, and
// returns its rows with their tracking IDs and the file's SHA-256.
func parseBulkCSV(data []byte, realm, day string, maxRows int) ([]bulkRow, string, error) {
	if !utf8.Valid(data) {
		return nil, "", errors.New("the file is not UTF-8 text; save it as CSV (UTF-8)")
	}
	sum := sha256.Sum256(data)
	fileHash := hex.EncodeToString(sum[:])
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // spreadsheet byte-order mark
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	records, err := r.ReadAll()
	if err != nil {
		return nil, "", fmt.Errorf("the file is not valid CSV: %v", err)
	}
	cols := map[string]int{"testtype": 0, "symptomdate": 1, "testdate": 2, "ref": 3}
	if len(records) > 0 && headerRow(records[0]) {
		cols = map[string]int{}
		for i, name := range records[0] {
			n := strings.NewReplacer(" ", "", "_", "", "-", "").Replace(strings.ToLower(strings.TrimSpace(name)))
			switch n {
			case "reference":
				n = "ref"
			case "trackingid":
				n = "uuid"
			}
			if _, dup := cols[n]; !dup {
				cols[n] = i
			}
		}
		if _, ok := cols["testtype"]; !ok {
			return nil, "", fmt.Errorf(`the first row is neither a header row with a "testType" column nor a person's row (%q is not a test type)`, truncate(records[0][0], 20))
		}
		records = records[1:]
	}
	if len(records) == 0 {
		return nil, "", errors.New("the file has no rows")
	}
	if len(records) > maxRows {
		return nil, "", fmt.Errorf("the file has %d rows; at most %d are allowed in one file", len(records), maxRows)
	}
	get := func(rec []string, col string) string {
		i, ok := cols[col]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	rows := make([]bulkRow, len(records))
	for i, rec := range records {
		row := bulkRow{Row: i + 1, TestType: strings.ToLower(get(rec, "testtype")), SymptomDate: get(rec, "symptomdate"),
			TestDate: get(rec, "testdate"), Ref: get(rec, "ref"), UUID: strings.ToLower(get(rec, "uuid"))}
		if utf8.RuneCountInString(row.Ref) > maxRefLength {
			row.Ref = string([]rune(row.Ref)[:maxRefLength])
		}
		switch {
		case row.TestType == "":
			row.Error = "the test type is empty"
		case !verification.ValidTestType(row.TestType):
			row.Error = fmt.Sprintf("%q is not a test type (confirmed, likely, negative, user-report)", truncate(row.TestType, 20))
			row.TestType = truncate(row.TestType, 20)
		}
		if row.UUID == "" {
			row.UUID = derivedUUID(realm, fileHash, day, row.Row)
		}
		rows[i] = row
	}
	return rows, fileHash, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// headerRow reports whether rec names columns rather than holding data: a
// data row starts with a test type.
func headerRow(rec []string) bool {
	return len(rec) > 0 && !verification.ValidTestType(strings.ToLower(strings.TrimSpace(rec[0])))
}

// derivedUUID is a version 8 UUID from SHA-256 of the row's identity.
func derivedUUID(realm, fileHash, day string, row int) string {
	sum := sha256.Sum256([]byte("candor bulk issue v1\x00" + realm + "\x00" + fileHash + "\x00" + day + "\x00" + strconv.Itoa(row)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// resultsHeader returns the columns of the results file (ui.js writes the
// same).
func resultsHeader() []string {
	return []string{"row", "ref", "status", "code", "code_expires", "link", "link_expires", "long_code", "tracking_id", "test_type", "symptom_date", "test_date", "error"}
}

// csvSafe defuses spreadsheet formulas in text from the uploaded file.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// writeResults writes the results file, times in loc.
func writeResults(w io.Writer, results []bulkResult, loc *time.Location) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(resultsHeader()); err != nil {
		return err
	}
	ts := func(unix int64) string {
		if unix == 0 {
			return ""
		}
		return time.Unix(unix, 0).In(loc).Format(time.RFC3339)
	}
	for _, r := range results {
		if err := cw.Write([]string{strconv.Itoa(r.Row), csvSafe(r.Ref), r.Status, r.Code, ts(r.ExpiresAt), r.Link, ts(r.LongExpiresAt),
			r.LongCode, r.UUID, csvSafe(r.TestType), csvSafe(r.SymptomDate), csvSafe(r.TestDate), r.Error}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

type bulkPage struct {
	Error   string
	MaxRows int
	Types   []string
}

func (h *Handler) bulkForm(c echo.Context, st *state) error {
	return h.render(c, http.StatusOK, "bulk", st, "Issue codes from a file", bulkPage{MaxRows: h.opts.MaxBulkRows, Types: st.realm.TestTypes})
}

// readUpload returns the uploaded file "file".
func readUpload(c echo.Context) ([]byte, error) {
	fh, err := c.FormFile("file")
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("the file is larger than %d MiB", maxBulkBytes>>20)
		}
		return nil, errNoFile
	}
	f, err := fh.Open()
	if err != nil {
		return nil, errNoFile
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading the file failed: %v", err)
	}
	if len(b) == 0 {
		return nil, errNoFile
	}
	return b, nil
}

// parseUpload reads and parses the upload, and records the run in the
// audit list. A problem with the file is returned as msg, for the user;
// err is an internal failure.
func (h *Handler) parseUpload(c echo.Context, st *state, tz int) (rows []bulkRow, msg string, err error) {
	data, err := readUpload(c)
	if err != nil {
		return nil, sentence(err.Error()), nil
	}
	day := verification.LocalDay(h.opts.Now(), tz).Format(verification.DateLayout)
	rows, fileHash, err := parseBulkCSV(data, st.realm.Name, day, h.opts.MaxBulkRows)
	if err != nil {
		return nil, sentence(err.Error()), nil
	}
	if err := h.acct.Record(c.Request().Context(), account.AsUser(st.user), st.realm.Name, account.ActionBulkIssue,
		fmt.Sprintf("%d rows", len(rows)), "file sha256 "+fileHash[:16]); err != nil {
		return nil, "", err
	}
	return rows, "", nil
}

// bulk is the no-script path: the file is issued at once and the answer is
// the results file itself.
func (h *Handler) bulk(c echo.Context, st *state) error {
	tz := h.zoneOffset(st, c.FormValue("zone"))
	rows, msg, err := h.parseUpload(c, st, tz)
	if err != nil {
		return h.fail(c, st, err)
	}
	if msg != "" {
		return h.render(c, http.StatusBadRequest, "bulk", st, "Issue codes from a file", bulkPage{Error: msg, MaxRows: h.opts.MaxBulkRows, Types: st.realm.TestTypes})
	}
	results := make([]bulkResult, len(rows))
	for i, r := range rows {
		results[i] = h.issueOne(c, st, r, tz)
	}
	var buf bytes.Buffer
	if err := writeResults(&buf, results, st.loc); err != nil {
		return h.fail(c, st, err)
	}
	name := fmt.Sprintf("candor-codes-%s-%s.csv", st.realm.Name, h.opts.Now().In(st.loc).Format("2006-01-02-1504"))
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	return c.Blob(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

type jsonError struct {
	Error string `json:"error"`
}

// bulkParse (script) parses the uploaded file and returns its rows, which
// the script then sends to bulkIssue in small batches, showing progress.
func (h *Handler) bulkParse(c echo.Context, st *state) error {
	rows, msg, err := h.parseUpload(c, st, h.zoneOffset(st, c.FormValue("zone")))
	if err != nil {
		h.log.ErrorContext(c.Request().Context(), "ui: bulk parse", "err", err)
		return c.JSON(http.StatusInternalServerError, jsonError{"internal error"})
	}
	if msg != "" {
		return c.JSON(http.StatusBadRequest, jsonError{msg})
	}
	return c.JSON(http.StatusOK, map[string]any{"rows": rows})
}

type bulkIssueRequest struct {
	Rows []bulkRow `json:"rows"`
	// Zone is the time zone the bulk page was shown in.
	Zone string `json:"zone"`
}

// bulkIssue (script) issues a batch of rows from bulkParse.
func (h *Handler) bulkIssue(c echo.Context, st *state) error {
	var req bulkIssueRequest
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return c.JSON(http.StatusRequestEntityTooLarge, jsonError{"the request is too large"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || len(req.Rows) == 0 || len(req.Rows) > maxBulkBatch {
		return c.JSON(http.StatusBadRequest, jsonError{fmt.Sprintf("send 1 to %d rows", maxBulkBatch)})
	}
	tz := h.zoneOffset(st, req.Zone)
	results := make([]bulkResult, len(req.Rows))
	for i, r := range req.Rows {
		results[i] = h.issueOne(c, st, r, tz)
	}
	return c.JSON(http.StatusOK, map[string]any{"results": results})
}
