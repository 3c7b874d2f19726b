package account

import "time"

// Session is a signed-in browser, stored by the SHA-256 of its token; the
// token itself lives only in the browser's cookie.
type Session struct {
	// Hash is the hex SHA-256 of the session token.
	Hash   string `json:"hash"`
	UserID string `json:"userID"`
	// CSRF is the token every form of this session must carry.
	CSRF string `json:"csrf"`
	// Realm is the realm the user works in now.
	Realm string `json:"realm,omitempty"`
	// PendingTOTP: the password was right but the second factor is still
	// to be given; the session may do nothing else.
	PendingTOTP bool `json:"pendingTOTP,omitempty"`
	// EnrolTOTP is the sealed secret of a TOTP enrolment in progress.
	EnrolTOTP []byte    `json:"enrolTOTP,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	LastSeen  time.Time `json:"lastSeen"`
	// ExpiresAt is when the session ends unless used again: LastSeen plus
	// the idle timeout, never after CreatedAt plus the absolute limit.
	ExpiresAt time.Time `json:"expiresAt"`
}

// Clone returns a copy of s.
func (s *Session) Clone() *Session {
	c := *s
	c.EnrolTOTP = append([]byte(nil), s.EnrolTOTP...)
	return &c
}
