package resource

import (
	"encoding/json"
	"testing"
	"time"
)

func TestStatusAppendJSONMatchesMarshal(t *testing.T) {
	three, two := 3, 2
	exp := time.Date(2031, 2, 3, 4, 5, 6, 789000000, time.UTC)
	cases := map[string]Status{
		"empty":       {},
		"no-licenses": {LicenseKey: "K", Brand: "b", Code: "product_not_licensed", Licenses: []StatusLicense{}, CheckedAt: time.Now().UTC()},
		"full": {LicenseKey: "ABCDE-FGHJK-MNPQR-STUVW-XYZ23", Brand: "rankmath", Valid: true, Code: "valid",
			Licenses: []StatusLicense{
				{Product: "pro", Status: "valid", Valid: true, ExpiresAt: &exp, SeatLimit: &three, SeatsUsed: 1, SeatsRemaining: &two},
				{Product: "content-ai", Status: "expired"},
			},
			Instance:  &StatusInstance{ID: "example.com/blog", Activated: true},
			CheckedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		"escaping": {LicenseKey: `a"b\c`, Brand: "<x>&", Code: "é\u2028\x01\n",
			Instance: &StatusInstance{ID: "sité.example/路径?q=<1>&r=\"2\"\t"}, CheckedAt: time.Date(2030, 1, 1, 0, 0, 0, 1, time.FixedZone("x", 3600))},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.AppendJSON(nil); string(got) != string(want) {
				t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
			}
		})
	}
}

func FuzzStatusAppendJSON(f *testing.F) {
	f.Add("key", "brand", "code", "product", "instance", int64(0))
	f.Fuzz(func(t *testing.T, key, brand, code, product, instance string, nanos int64) {
		n := 5
		st := Status{LicenseKey: key, Brand: brand, Code: code, CheckedAt: time.Unix(0, nanos).UTC(),
			Licenses: []StatusLicense{{Product: product, SeatLimit: &n}}, Instance: &StatusInstance{ID: instance}}
		want, err := json.Marshal(st)
		if err != nil {
			t.Skip("not encodable by encoding/json either")
		}
		if got := st.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	})
}
