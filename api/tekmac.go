package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"strconv"
	"strings"
)

// TEKMACCleartext returns the text whose HMAC binds a verification
// certificate to exactly these keys: the keys sorted by their base64 string
// as sent, each as "key.rollingStartNumber.rollingPeriod.transmissionRisk"
// (or without the risk when withRisk is false), joined with ",".
func TEKMACCleartext(keys []ExposureKey, withRisk bool) string {
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b ExposureKey) int { return strings.Compare(a.Key, b.Key) })
	var sb strings.Builder
	sb.Grow(len(sorted) * 40)
	for i, k := range sorted {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k.Key)
		sb.WriteByte('.')
		sb.WriteString(strconv.FormatInt(int64(k.IntervalNumber), 10))
		sb.WriteByte('.')
		sb.WriteString(strconv.FormatInt(int64(k.IntervalCount), 10))
		if withRisk {
			sb.WriteByte('.')
			sb.WriteString(strconv.Itoa(k.TransmissionRisk))
		}
	}
	return sb.String()
}

// TEKMAC computes the HMAC-SHA256 of the keys' cleartext under secret: the
// phone sends its base64 as the certificate request's ekeyhmac.
func TEKMAC(secret []byte, keys []ExposureKey, withRisk bool) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(TEKMACCleartext(keys, withRisk)))
	return m.Sum(nil)
}

// VerifyTEKMAC reports whether mac is the HMAC of keys under secret. The form
// without transmission risk is accepted only when every key's risk is 0, as
// older apps computed it that way.
func VerifyTEKMAC(secret, mac []byte, keys []ExposureKey) bool {
	if hmac.Equal(TEKMAC(secret, keys, true), mac) {
		return true
	}
	for _, k := range keys {
		if k.TransmissionRisk != 0 {
			return false
		}
	}
	return hmac.Equal(TEKMAC(secret, keys, false), mac)
}
