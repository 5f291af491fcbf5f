package resource

import (
	"encoding/json"
	"strconv"
	"time"
)

// AppendJSON appends the JSON encoding of s to b, byte for byte what encoding/json.Marshal
// produces (TestStatusAppendJSONMatchesMarshal), without reflection: the status answer is
// the hottest response of the system.
func (s *Status) AppendJSON(b []byte) []byte {
	b = append(b, `{"license_key":`...)
	b = appendString(b, s.LicenseKey)
	b = append(b, `,"brand":`...)
	b = appendString(b, s.Brand)
	b = append(b, `,"valid":`...)
	b = strconv.AppendBool(b, s.Valid)
	b = append(b, `,"code":`...)
	b = appendString(b, s.Code)
	b = append(b, `,"licenses":`...)
	if s.Licenses == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Licenses {
			if i > 0 {
				b = append(b, ',')
			}
			b = s.Licenses[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	if s.Instance != nil {
		b = append(b, `,"instance":{"id":`...)
		b = appendString(b, s.Instance.ID)
		b = append(b, `,"activated":`...)
		b = strconv.AppendBool(b, s.Instance.Activated)
		b = append(b, `,"development":`...)
		b = strconv.AppendBool(b, s.Instance.Development)
		b = append(b, '}')
	}
	b = append(b, `,"checked_at":`...)
	b = appendTime(b, s.CheckedAt)
	return append(b, '}')
}

func (l *StatusLicense) appendJSON(b []byte) []byte {
	b = append(b, `{"product":`...)
	b = appendString(b, l.Product)
	b = append(b, `,"status":`...)
	b = appendString(b, l.Status)
	b = append(b, `,"valid":`...)
	b = strconv.AppendBool(b, l.Valid)
	b = append(b, `,"expires_at":`...)
	if l.ExpiresAt == nil {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, *l.ExpiresAt)
	}
	b = append(b, `,"seat_limit":`...)
	b = appendIntPtr(b, l.SeatLimit)
	b = append(b, `,"seats_used":`...)
	b = strconv.AppendInt(b, int64(l.SeatsUsed), 10)
	b = append(b, `,"seats_remaining":`...)
	b = appendIntPtr(b, l.SeatsRemaining)
	return append(b, '}')
}

func appendIntPtr(b []byte, p *int) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, int64(*p), 10)
}

func appendTime(b []byte, t time.Time) []byte {
	// what time.Time.MarshalJSON writes (years 0–9999)
	if y := t.Year(); y < 0 || y > 9999 {
		j, _ := json.Marshal(t)
		return append(b, j...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes plain printable ASCII directly and hands anything that
// encoding/json would escape (quotes, backslashes, control characters, <, >, &, non-ASCII)
// to encoding/json itself, so the output is always identical.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s)
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
