package lease

import "bytes"

// AcceptsJOSE reports whether an Accept header asks for a signed answer (API.md "Signed
// status and offline leases"): application/jose must be named with a q above 0, and at
// least as high as the q the header gives application/json (its most specific range:
// application/json, application/*, */*). A bare */* (curl's default) or no header is the
// plain answer, as before; "application/jose;q=0.5, */*" prefers the plain one. A
// header sent several times is passed joined with commas. It allocates nothing: the edge
// runs it on every status check.
func AcceptsJOSE(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	jose, plain := -1, -1 // q in thousandths; -1: no range matched
	spec := 0             // how specific the range plain's q came from is
	for len(h) > 0 {
		var r []byte
		if i := bytes.IndexByte(h, ','); i >= 0 {
			r, h = h[:i], h[i+1:]
		} else {
			r, h = h, nil
		}
		typ, params := r, []byte(nil)
		if i := bytes.IndexByte(r, ';'); i >= 0 {
			typ, params = r[:i], r[i+1:]
		}
		typ = bytes.TrimSpace(typ)
		q := qValue(params)
		switch {
		case bytes.EqualFold(typ, []byte(ContentType)):
			jose = max(jose, q)
		case bytes.EqualFold(typ, []byte("application/json")):
			if spec < 3 {
				plain, spec = q, 3
			} else {
				plain = max(plain, q)
			}
		case bytes.EqualFold(typ, []byte("application/*")):
			if spec < 2 {
				plain, spec = q, 2
			}
		case bytes.Equal(typ, []byte("*/*")):
			if spec < 1 {
				plain, spec = q, 1
			}
		}
	}
	return jose > 0 && jose >= plain
}

// qValue is the q parameter of a media range's parameters in thousandths (1000 when
// absent or malformed: RFC 9110's default weight).
func qValue(params []byte) int {
	for len(params) > 0 {
		var p []byte
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, nil
		}
		p = bytes.TrimSpace(p)
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
			continue
		}
		v := bytes.TrimSpace(p[2:])
		if len(v) == 0 || (v[0] != '0' && v[0] != '1') {
			return 1000
		}
		q := int(v[0]-'0') * 1000
		if len(v) > 1 {
			if v[1] != '.' || len(v) > 5 {
				return 1000
			}
			scale := 100
			for _, c := range v[2:] {
				if c < '0' || c > '9' {
					return 1000
				}
				q += int(c-'0') * scale
				scale /= 10
			}
		}
		return min(q, 1000)
	}
	return 1000
}
